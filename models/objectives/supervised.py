"""Supervised baseline: multi-label classification on the shard labels.

Wang et al. 2022 (Sec. 2.2, App. C) pre-train "supervised classification" on AudioSet with the same
encoder, a linear classifier on the pooled features, Adam with lr 0-2e-4 linear warm-up over 5k
steps then cosine to 0, batch 1024, 100k steps, per-example input standardisation; AudioSet labels
are multi-hot, hence sigmoid binary cross-entropy per class (mean over batch and classes).
Tagliasacchi et al. 2019 (Sec. 4) train their Supervised baseline with the ``mobile`` encoder plus a
fully connected layer, Adam lr 1e-3, batch 256: ``SupervisedHParams.tagliasacchi2019()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import losses as L
from .base import HParams, Objective, register


@dataclass
class SupervisedHParams(HParams):
    optimizer: str = "adam"
    lr: float = 2e-4
    batch_size: int = 1024
    schedule: str = "warmup_cosine"
    warmup_steps: int = 5000
    total_steps: int | None = 100_000
    final_lr_ratio: float = 0.0
    n_frames: int = 300
    num_classes: int | None = None
    standardize: bool = True
    source: str = "Wang et al. 2022, Sec. 3 and App. C (Adam 2e-4, 5k warm-up + cosine to 0, batch 1024, 100k steps)"

    @classmethod
    def tagliasacchi2019(cls, **kw: Any) -> "SupervisedHParams":
        """Tagliasacchi et al. 2019 Sec. 4 values (Adam lr 1e-3, batch 256, constant lr, N = 96)."""
        base = dict(
            lr=1e-3, batch_size=256, schedule="constant", warmup_steps=0, total_steps=None, n_frames=96,
            standardize=False, source="Tagliasacchi et al. 2019, Sec. 4 (Adam lr 1e-3, batch 256)",
        )
        base.update(kw)
        return cls(**base)


@register
class SupervisedObjective(Objective):
    """``supervised``. Batch: ``x`` ``[B, 1, F, N]``, ``labels`` ``[B, V]`` multi-hot float."""

    name = "supervised"
    sampler = "crop"
    batch_keys = ("x", "labels")
    default_encoder = ("slowfast_nfnet_f0", {"n_mels": 80})
    HParams = SupervisedHParams

    def __init__(self, encoder: nn.Module, num_classes: int | None = None, **hparams: Any):
        if num_classes is not None:
            hparams["num_classes"] = num_classes
        super().__init__(encoder, **hparams)
        if not self.hparams.num_classes or self.hparams.num_classes < 1:
            raise ValueError("supervised: num_classes (size V of the label vocabulary) is required")
        self.classifier = nn.Linear(int(encoder.embedding_dim), int(self.hparams.num_classes))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, labels = self._require(batch, "x", "labels")
        if labels.shape[-1] != self.classifier.out_features:
            raise ValueError(f"supervised: labels have {labels.shape[-1]} classes, head has {self.classifier.out_features}")
        if self.hparams.standardize:
            x = L.standardize_per_example(x)
        logits = self.classifier(self.encoder(x))
        loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return {"loss": loss}
