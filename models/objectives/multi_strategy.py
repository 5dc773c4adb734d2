"""Multiple sampling strategies of Kuroyanagi & Komatsu 2022 (Secs. 2.1-2.4, eqs. 1-7).

``L = L_clip + alpha L_frame + beta L_pitch`` (eq. 7) with ``alpha = beta = 1`` (Sec. 3.2):

* ``L_clip`` (eqs. 1-2): COLA bilinear multiclass CE between the clip representations
  ``g_clip(mean_t h)`` of ``x`` (``x1``) and ``x'`` (``x2``) with in-batch negatives (global batch
  under DDP).
* ``L_frame`` (eqs. 3-5): for each frame ``t`` of a segment, the frames ``t + tau``
  (``|tau| <= m``) of the *same* segment are positives and all ``T'`` frames of that segment form the
  denominator, bilinear similarity on ``g_frame(h)``; averaged over the batch and over the three
  views ``x``, ``x'`` and the pitch-shifted ``x_hat`` (eq. 5).
* ``L_pitch`` (eq. 6): ``|| g_pitch(f(x_hat)) - g_pitch(f(x)) - a ||^2`` with a per-frame scalar head
  ``g_pitch`` and the shift ``a`` broadcast over frames.

``h = f(x)`` are the encoder's frame embeddings (``encoder.frames``, ``[B, T', d]``), computed once
per view. Choices where the paper is vague (also in docs/objectives.md):

* clip pooling: the paper's "global average pooling along with temporal frames" is the encoder's
  ``pool_frames`` (temporal mean for ``efficientnet_b0``; for other encoders their own clip pooling,
  so that every encoder parameter is used -- DDP without ``find_unused_parameters``). Encoders
  without ``pool_frames`` get the temporal mean.
* ``m``: Sec. 3.2 says "The hyperparameter m of T'' was set to 0 due to T''=3": with T' = 3 output
  frames any m >= 1 would make every frame a positive of the centre frame, so the default is the
  paper's ``m = 0`` (positive = the frame itself, negatives = the other frames of the segment);
  ``frame_m`` is configurable. Eq. 4's ``1/(N' M)`` is read as the mean over batch and target frames
  (identical for the paper's M = 1).
* ``g_clip`` / ``g_frame`` are COLA heads (512-unit Linear -> LayerNorm -> tanh) with separate
  bilinear matrices; ``g_pitch`` is the same head followed by Linear(512, 1).
* Pitch target ``a``: "Since the pitch-shifted width is a relative measure" -- we regress
  ``log(pitch_factor)`` (``pitch_target="log"``), which is 0 for no shift and antisymmetric, so a
  difference of per-frame outputs can represent it; ``"factor"`` (raw factor in [0.8, 1.2]) and
  ``"factor_minus_one"`` are available.

Adam lr 1e-4, batch 1024, 250 epochs, EfficientNet-B0 (Sec. 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import losses as L
from .base import OBJECTIVES, Objective
from .cola import ColaHParams
from .heads import Bilinear, ColaHead


@dataclass
class MultiStrategyHParams(ColaHParams):
    """COLA's optimisation settings (same paper, same training run) plus the two extra loss weights."""

    alpha: float = 1.0  # weight of L_frame (eq. 7)
    beta: float = 1.0  # weight of L_pitch (eq. 7)
    frame_m: int = 0  # half-width m of the positive window T''
    pitch_target: str = "log"  # log | factor | factor_minus_one
    source: str = "Kuroyanagi & Komatsu 2022, Secs. 2-3.2 (alpha=beta=1, m=0, Adam lr 1e-4, batch 1024, 250 epochs)"


def _pitch_target(factor: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "log":
        return torch.log(factor)
    if kind == "factor":
        return factor
    if kind == "factor_minus_one":
        return factor - 1.0
    raise ValueError(f"unknown pitch_target {kind!r}")


@OBJECTIVES.register("multi_strategy")
class MultiStrategyObjective(Objective):
    """``multi_strategy``. Batch: ``x1``, ``x2``, ``x_pitch`` ``[B, 1, F, N]``, ``pitch_factor`` ``[B]``."""

    batch_coupled = True
    sampler = "clip_pair+pitch_shift"
    needs_frames = True
    batch_keys = ("x1", "x2", "x_pitch", "pitch_factor")
    test_config = {"hparams": {"head_dim": 8}, "encoder": ("mobile", {})}
    default_encoder = ("efficientnet_b0", {"head": "cola"})
    HParams = MultiStrategyHParams

    def __init__(self, encoder: nn.Module, **hparams: Any):
        super().__init__(encoder, **hparams)
        _pitch_target(torch.ones(1), self.hparams.pitch_target)  # validate early
        d = int(encoder.frame_dim)
        k = self.hparams.head_dim
        # clip pooling: the encoder's own pool_frames when it has one (forward == pool_frames(frames),
        # docs/contracts.md), else the temporal mean of the frames
        self._has_pool = callable(getattr(encoder, "pool_frames", None))
        d_clip = int(encoder.embedding_dim) if self._has_pool else d
        self.g_clip = ColaHead(d_clip, k)
        self.w_clip = Bilinear(k)
        self.g_frame = ColaHead(d, k)
        self.w_frame = Bilinear(k)
        self.g_pitch = nn.Sequential(ColaHead(d, k), nn.Linear(k, 1))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x1, x2, xp, factor = self._require(batch, "x1", "x2", "x_pitch", "pitch_factor")
        b = x1.shape[0]
        hp = self.hparams
        h = self.encoder.frames(torch.cat([x1, x2, xp], 0))  # [3B, T', d]
        h1, hps = h[:b], h[2 * b :]

        h12 = h[: 2 * b]
        zc = self.g_clip(self.encoder.pool_frames(h12) if self._has_pool else h12.mean(1))
        l_clip = L.bilinear_ce_loss(zc[:b], zc[b:], self.w_clip.weight)

        zf = self.g_frame(h)  # [3B, T', k]
        l_frame = sum(
            L.frame_contrastive_loss(zf[i * b : (i + 1) * b], self.w_frame.weight, hp.frame_m) for i in range(3)
        ) / 3.0

        p = self.g_pitch(torch.cat([h1, hps], 0)).squeeze(-1)  # [2B, T']
        a = _pitch_target(factor.to(p.dtype), hp.pitch_target)
        l_pitch = L.pitch_regression_loss(p[b:], p[:b], a)

        loss = l_clip + hp.alpha * l_frame + hp.beta * l_pitch
        return {"loss": loss, **self._detach_logs(loss_clip=l_clip, loss_frame=l_frame, loss_pitch=l_pitch)}
