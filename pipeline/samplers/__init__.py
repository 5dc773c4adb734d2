"""Samplers: clip log-mel -> training examples, one registered unit per strategy (see base.py).

Every module of this folder is imported on first lookup in ``SAMPLERS`` (one file per sampler)."""
from .base import SAMPLERS, Composed, Sampler, build_sampler, random_start, resolve_augment_on, take

__all__ = ["SAMPLERS", "Composed", "Sampler", "build_sampler", "random_start", "resolve_augment_on", "take"]
