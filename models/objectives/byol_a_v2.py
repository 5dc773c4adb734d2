"""``byol_a_v2``: BYOL-A v2 (Niizumi et al., TASLP 2023, arXiv 2204.07402) as a preset of ``byol_a``.

The BYOL framework, heads and loss are v1's (``byol.py``: projector/predictor 4096-256, symmetrised
2 - 2 cos, EMA tau 0.99, Adam 3e-4, batch 256, 100 epochs; v2 Sec. IV-A keeps that setting as we read it).
What v2 changes is the encoder and the augmentations:

* encoder ``audio_ntt2022`` (Sec. III-B): local conv features and global MLP features concatenated,
  temporal mean + max, 3072-d;
* sampler ``views_v2`` (Sec. III-A): mixup, random resize crop and the new random linear fader.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import OBJECTIVES
from .byol import ByolAObjective, ByolHParams


@dataclass
class ByolAV2HParams(ByolHParams):
    source: str = ("Niizumi et al. 2023 (BYOL-A v2), Secs. III-IV: AudioNTT2022 encoder, mixup + RRC + random linear "
                   "fader; BYOL setting of v1 (MLP 4096-256, tau 0.99, Adam 3e-4, batch 256, 100 epochs)")


@OBJECTIVES.register("byol_a_v2")
class ByolAV2Objective(ByolAObjective):
    """``byol_a_v2``. Batch: ``x1``, ``x2`` (two ``views_v2`` views)."""

    sampler = "views_v2"
    default_encoder = ("audio_ntt2022", {"d": 2048})
    test_config = {"hparams": {"proj_hidden": 16, "proj_dim": 8}, "encoder": ("audio_ntt2022", {"d": 512})}
    HParams = ByolAV2HParams
