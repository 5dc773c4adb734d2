"""COLA clip-level objective (Kuroyanagi & Komatsu 2022, Sec. 2.1, eqs. 1-2; after Saeed et al. 2021).

Two segments ``x`` (``x1``) and ``x+`` (``x2``) of the same clip are positives; segments of the
other clips of the (global) batch are the negatives. ``z = g(f(x))`` with the shallow head ``g``
(512-unit Linear -> LayerNorm -> tanh, Sec. 3.2), similarity ``s(x, x') = z^T W z'`` (eq. 1,
bilinear: better than cosine in Table 2), loss ``-log exp s(x, x+) / sum_{x- in X-(x) + {x+}} exp s(x, x-)``
(eq. 2), one direction (anchor ``x1``), averaged over anchors.

Encoder: EfficientNet-B0 whose frame output is Kuroyanagi's 512-d "h" (``head="cola"``: frequency
average pooling, 512-unit FC + LayerNorm + tanh, Sec. 3.2); the clip embedding is the temporal mean
(Sec. 2.1 "after global average pooling along with temporal frames"). Adam lr 1e-4, batch 1024,
250 epochs (Sec. 3.2).

Under DDP the negatives come from all ranks (``losses.bilinear_ce_loss`` gathers the positives with
gradient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import losses as L
from .base import OBJECTIVES, HParams, Objective
from .heads import Bilinear, ColaHead


@dataclass
class ColaHParams(HParams):
    optimizer: str = "adam"
    lr: float = 1e-4
    batch_size: int = 1024
    epochs: int | None = 250
    n_frames: int = 96
    head_dim: int = 512
    source: str = "Kuroyanagi & Komatsu 2022, Secs. 2.1 and 3.2 (Adam lr 1e-4, batch 1024, 250 epochs)"


@OBJECTIVES.register("cola")
class ColaObjective(Objective):
    """``cola``. Batch: ``x1``, ``x2`` ``[B, 1, F, N]`` (two segments of each clip)."""

    batch_coupled = True
    sampler = "clip_pair"
    batch_keys = ("x1", "x2")
    test_config = {"hparams": {"head_dim": 8}}
    default_encoder = ("efficientnet_b0", {"head": "cola"})
    HParams = ColaHParams

    def __init__(self, encoder: nn.Module, **hparams: Any):
        super().__init__(encoder, **hparams)
        self.g_clip = ColaHead(int(encoder.embedding_dim), self.hparams.head_dim)
        self.w_clip = Bilinear(self.hparams.head_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x1, x2 = self._require(batch, "x1", "x2")
        b = x1.shape[0]
        z = self.g_clip(self.encoder(torch.cat([x1, x2], 0)))
        loss = L.bilinear_ce_loss(z[:b], z[b:], self.w_clip.weight)
        return {"loss": loss}
