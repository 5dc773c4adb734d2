"""DeLoRes-S = Barlow Twins on audio (Ghosh et al. 2022, Secs. III-A, III-B eqs. 3-4, V-B-1).

``z^A = g(f(x^A))``, ``z^B = g(f(x^B))`` with the projector ``g`` of three linear layers with 8192
units, BatchNorm1d + ReLU after the first two, a dropout between encoder and projector and a final
BatchNorm (zero mean, unit variance). ``C_ij`` is the cross-correlation of the batch-normalised
outputs along the batch (eq. 4) and ``L = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2``
(eq. 3), ``lambda = 0.0051``.

Optimisation (Sec. V-B-1, "as used in" Zbontar et al. 2021): LARS, batch 1024, learning rate 0.2
for weights and 0.0048 for biases (and BatchNorm parameters), both multiplied by batch/256; 10
warm-up epochs then cosine decay to 1/1000 of the base rate; 100 epochs. The weight decay (1.5e-6),
LARS momentum 0.9 and trust coefficient 1e-3 are Barlow Twins' (not restated by DeLoRes); biases
and BN parameters get neither weight decay nor LARS adaptation (``param_groups``; timm's
``timm.optim.Lars`` skips adaptation for a group with ``weight_decay=0``).

Choices: the dropout rate is not given; we use 0.3 (the only dropout rate in the paper, AudioNTT's
head, Table I). The final BatchNorm is the affine-free standardisation in
``losses.barlow_twins_loss`` over the *global* batch (gathered under DDP); the hidden BatchNorms
become SyncBatchNorm through the trainer under DDP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import losses as L
from .base import OBJECTIVES, HParams, Objective
from .heads import barlow_projector


@dataclass
class BarlowHParams(HParams):
    optimizer: str = "lars"
    lr: float = 0.2  # weights; scaled by batch/256
    lr_bias: float = 0.0048  # biases and BN parameters; scaled by batch/256
    lr_scale_batch: bool = True
    batch_size: int = 1024
    weight_decay: float = 1.5e-6
    momentum: float = 0.9
    lars_trust_coeff: float = 1e-3
    schedule: str = "warmup_cosine"
    warmup_epochs: float = 10.0
    epochs: int | None = 100
    final_lr_ratio: float = 1e-3
    n_frames: int = 96
    proj_units: int = 8192
    proj_dropout: float = 0.3
    norm: str | None = "bn"
    lambd: float = 0.0051
    bn_eps: float = 1e-5
    source: str = (
        "Ghosh et al. 2022, Sec. V-B-1 (projector 8192, lambda 0.0051, LARS lr 0.2/0.0048 x batch/256, "
        "batch 1024, 10 warm-up epochs + cosine, 100 epochs); wd/momentum/trust from Zbontar et al. 2021"
    )


@OBJECTIVES.register("barlow_twins")
class BarlowTwinsObjective(Objective):
    """``barlow_twins`` (DeLoRes-S). Batch: ``x1``, ``x2`` ``[B, 1, F, N]`` (two augmented views)."""

    batch_coupled = True
    sampler = "views"
    batch_keys = ("x1", "x2")
    test_config = {"hparams": {"proj_units": 16}, "encoder": ("audio_ntt", {"d": 512})}
    default_encoder = ("audio_ntt", {"d": 2048})
    HParams = BarlowHParams

    def __init__(self, encoder: nn.Module, **hparams: Any):
        super().__init__(encoder, **hparams)
        hp = self.hparams
        self.projector = barlow_projector(int(encoder.embedding_dim), hp.proj_units, norm=hp.norm, dropout=hp.proj_dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x1, x2 = self._require(batch, "x1", "x2")
        # two separate passes, as in Barlow Twins: BatchNorm statistics are per view
        z1 = self.projector(self.encoder(x1))
        z2 = self.projector(self.encoder(x2))
        loss = L.barlow_twins_loss(z1, z2, lambd=self.hparams.lambd, eps=self.hparams.bn_eps)
        return {"loss": loss}

    def param_groups(self, batch_size: int | None = None) -> list[dict[str, Any]]:
        """LARS groups: weights (lr 0.2 x B/256, weight decay, adapted) and biases/BN (lr 0.0048 x
        B/256, no weight decay, not adapted)."""
        return self.weight_bias_groups(batch_size)
