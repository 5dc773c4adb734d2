"""Samplers: clip log-mel -> training examples, one registered unit per strategy (see base.py)."""
from .base import SAMPLERS, Composed, Sampler, build_sampler, random_start, register_sampler, take
from . import clip_pair, context, crop, mix_views, pitch_shift, temporal_gap, triplet, views  # noqa: F401  (register)
from . import patch_mask, views_v2  # noqa: F401  (register)

__all__ = ["SAMPLERS", "Composed", "Sampler", "build_sampler", "random_start", "register_sampler", "take"]
