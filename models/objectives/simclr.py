"""SimCLR as used by Wang et al. 2022 (Secs. 2.2, 3; App. C).

Each input spectrogram is standardised by its own mean and standard deviation (App. C); both views
go through the encoder and a projector "MLP with 3 hidden layers of size 4096" (Sec. 3); the loss is
NT-Xent with temperature 0.1 (App. C) over the *global* batch (2N views, the other 2N - 2 views are
negatives; gathered with gradient under DDP). Adam, learning rate linearly increased from 0 to 2e-4
over 5k steps then cosine-decayed to 0 (App. C); batch 4096, 200k steps, 3-second crops (300 frames)
with 80 mel bins (Sec. 3); Slowfast NFNet-F0 (Sec. 2.3). The two views come from the ``mix_views``
sampler (example mixing with ratio ~ Beta(5, 2), App. C).

Not stated in the paper (our choice, docs/objectives.md): projector output 128-d and BatchNorm +
ReLU in the hidden layers (Chen et al. 2020); both views in one encoder pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import losses as L
from .base import OBJECTIVES, HParams, Objective
from .heads import simclr_projector


@dataclass
class SimCLRHParams(HParams):
    optimizer: str = "adam"
    lr: float = 2e-4
    batch_size: int = 4096
    schedule: str = "warmup_cosine"
    warmup_steps: int = 5000
    total_steps: int | None = 200_000
    final_lr_ratio: float = 0.0
    n_frames: int = 300
    temperature: float = 0.1
    proj_hidden: int = 4096
    proj_layers: int = 3
    proj_dim: int = 128
    norm: str | None = "bn"
    standardize: bool = True
    source: str = (
        "Wang et al. 2022, Sec. 3 and App. C (projector 3x4096, tau 0.1, per-example standardisation, "
        "Adam 2e-4 with 5k warm-up + cosine to 0, batch 4096, 200k steps)"
    )


@OBJECTIVES.register("simclr")
class SimCLRObjective(Objective):
    """``simclr``. Batch: ``x1``, ``x2`` ``[B, 1, F, N]`` (two views)."""

    batch_coupled = True
    sampler = "mix_views"
    batch_keys = ("x1", "x2")
    # the objective standardises the (mixed) views itself, so the sampler must not do it first
    sampler_kwargs = {"standardize": False}
    test_config = {"hparams": {"proj_hidden": 16, "proj_dim": 8}, "encoder": ("mobile", {})}
    default_encoder = ("slowfast_nfnet_f0", {"n_mels": 80})
    HParams = SimCLRHParams

    def __init__(self, encoder: nn.Module, **hparams: Any):
        super().__init__(encoder, **hparams)
        hp = self.hparams
        self.projector = simclr_projector(int(encoder.embedding_dim), hp.proj_hidden, hp.proj_layers, hp.proj_dim, norm=hp.norm)

    def input_norm(self) -> dict[str, Any] | None:
        return {"type": "per_example"} if self.hparams.standardize else None

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x1, x2 = self._require(batch, "x1", "x2")
        b = x1.shape[0]
        x = torch.cat([x1, x2], 0)
        if self.hparams.standardize:
            x = L.standardize_per_example(x)
        z = self.projector(self.encoder(x))
        loss = L.nt_xent_loss(z[:b], z[b:], self.hparams.temperature)
        return {"loss": loss}
