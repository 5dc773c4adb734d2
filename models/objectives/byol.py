"""BYOL-A (Niizumi et al. 2021, Sec. II-B eq. 1, Sec. IV-A-3).

Online network: encoder ``f_theta`` -> projector ``g_theta`` -> predictor ``q_theta``; target network:
``f_xi`` -> ``g_xi`` with ``xi <- tau xi + (1 - tau) theta`` after every step (``after_step``).
Projector and predictor: Linear(4096) -> BatchNorm -> ReLU -> Linear(256). Loss (eq. 1, symmetrised):
``L = ||q(z1)/|q(z1)| - z'2/|z'2| ||^2 + ||q(z2)/|q(z2)| - z'1/|z'1| ||^2`` (= 2 - 2 cos each), mean
over the batch, no gradient into the target. Adam lr 3e-4, tau = 0.99 (fixed; the paper gives a
single value), batch 256, 100 epochs; AudioNTT encoder with 2048-d embedding by default.

Each network sees each view in a pass of its own (``bn_views="separate"``), as BYOL (Grill et al. 2020)
applies online and target networks to the two views: BatchNorm statistics are per view, never pooled
over the pair.  ``bn_views="joint"`` (one pass over both views) is kept for comparison
(docs/bench-real.md "byol_a and speech").

The two views come from the BYOL-A augmentation pipeline of the sampler (pre-normalisation,
log-mixup-exp, random resize crop, post-normalisation), batch keys ``x1``, ``x2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import losses as L
from .base import OBJECTIVES, HParams, Objective, make_target
from .heads import byol_mlp


@dataclass
class ByolHParams(HParams):
    optimizer: str = "adam"
    lr: float = 3e-4
    batch_size: int = 256
    epochs: int | None = 100
    ema_tau: float | None = 0.99
    n_frames: int = 96
    proj_hidden: int = 4096
    proj_dim: int = 256
    norm: str | None = "bn"  # BatchNorm in projector / predictor (None: BN-free, e.g. for tests)
    bn_views: str = "separate"  # "separate": one pass per view (BYOL's BN statistics); "joint": both views in one pass
    source: str = "Niizumi et al. 2021, Sec. IV-A-3 (MLP 4096-256, tau 0.99, Adam lr 3e-4, batch 256, 100 epochs)"


@OBJECTIVES.register("byol_a")
class ByolAObjective(Objective):
    """``byol_a``. Batch: ``x1``, ``x2`` ``[B, 1, F, N]`` (two augmented views)."""

    sampler = "views"
    batch_keys = ("x1", "x2")
    test_config = {"hparams": {"proj_hidden": 16, "proj_dim": 8}, "encoder": ("audio_ntt", {"d": 512})}
    default_encoder = ("audio_ntt", {"d": 2048})
    HParams = ByolHParams
    ema_pairs = (("target_encoder", "encoder"), ("target_projector", "projector"))

    def __init__(self, encoder: nn.Module, **hparams: Any):
        super().__init__(encoder, **hparams)
        hp = self.hparams
        if hp.bn_views not in ("separate", "joint"):
            raise ValueError(f"bn_views must be 'separate' or 'joint', got {hp.bn_views!r}")
        d = int(encoder.embedding_dim)
        self.projector = byol_mlp(d, hp.proj_hidden, hp.proj_dim, norm=hp.norm)
        self.predictor = byol_mlp(hp.proj_dim, hp.proj_hidden, hp.proj_dim, norm=hp.norm)
        self.target_encoder = make_target(self.encoder)
        self.target_projector = make_target(self.projector)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x1, x2 = self._require(batch, "x1", "x2")
        if self.hparams.bn_views == "joint":
            b = x1.shape[0]
            x = torch.cat([x1, x2], 0)
            q = self.predictor(self.projector(self.encoder(x)))
            with torch.no_grad():
                z_t = self.target_projector(self.target_encoder(x))
            q1, q2, t1, t2 = q[:b], q[b:], z_t[:b], z_t[b:]
        else:  # BYOL (Grill et al. 2020) applies each network to each view on its own: BN statistics per view
            q1, q2 = (self.predictor(self.projector(self.encoder(x))) for x in (x1, x2))
            with torch.no_grad():
                t1, t2 = (self.target_projector(self.target_encoder(x)) for x in (x1, x2))
        # view 1 predicts the target of view 2 and vice versa
        per_example = L.byol_loss(q1, t2) + L.byol_loss(q2, t1)
        loss = per_example.mean()
        return {"loss": loss}
