"""Supervised baseline: multi-label classification on the shard labels.

Wang et al. 2022 (Sec. 2.2, App. C) pre-train "supervised classification" on AudioSet with the same
encoder, a linear classifier on the pooled features, Adam with lr 0-2e-4 linear warm-up over 5k
steps then cosine to 0, batch 1024, 100k steps, per-example input standardisation; AudioSet labels
are multi-hot, hence sigmoid binary cross-entropy per class (mean over batch and classes).  W22
Sec. 2.2 augments with example mixing in both the supervised and the SimCLR setting: here each
example is mixed with another of the batch, ``l x + (1 - l) x_other`` and likewise its label vector,
``l ~ Beta(5, 2)`` (``mix_beta``; App. C), after the per-example standardisation.
Tagliasacchi et al. 2019 (Sec. 4) train their Supervised baseline end to end on each single-label
downstream task with the ``mobile`` encoder plus a fully connected layer, Adam lr 1e-3, batch 256:
``SupervisedHParams.tagliasacchi2019()`` (softmax cross-entropy, no mixing), also ``--hp preset=tagliasacchi2019``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import losses as L
from .base import OBJECTIVES, HParams, Objective


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
    loss: str = "bce"  # bce: multi-label sigmoid BCE (AudioSet) | softmax: cross-entropy on the label distribution
    mix_beta: tuple[float, float] | None = (5.0, 2.0)  # example mixing ratio ~ Beta(a, b); None: off
    source: str = "Wang et al. 2022, Sec. 3 and App. C (Adam 2e-4, 5k warm-up + cosine to 0, batch 1024, 100k steps)"

    PRESETS = ("tagliasacchi2019",)

    @classmethod
    def tagliasacchi2019(cls, **kw: Any) -> "SupervisedHParams":
        """Tagliasacchi et al. 2019 Sec. 4 values (Adam lr 1e-3, batch 256, constant lr, N = 96)."""
        base = dict(
            lr=1e-3, batch_size=256, schedule="constant", warmup_steps=0, total_steps=None, n_frames=96,
            standardize=False, loss="softmax", mix_beta=None,
            source="Tagliasacchi et al. 2019, Sec. 4 (Adam lr 1e-3, batch 256)",
        )
        base.update(kw)
        return cls(**base)


@OBJECTIVES.register("supervised")
class SupervisedObjective(Objective):
    """``supervised``. Batch: ``x`` ``[B, 1, F, N]``, ``labels`` ``[B, V]`` multi-hot float."""

    sampler = "crop"
    batch_keys = ("x", "labels")
    test_config = {"encoder": ("mobile", {})}
    default_encoder = ("slowfast_nfnet_f0", {"n_mels": 80})
    HParams = SupervisedHParams

    def __init__(self, encoder: nn.Module, num_classes: int | None = None, **hparams: Any):
        if num_classes is not None:
            hparams["num_classes"] = num_classes
        super().__init__(encoder, **hparams)
        if not self.hparams.num_classes or self.hparams.num_classes < 1:
            raise ValueError("supervised: num_classes (size V of the label vocabulary) is required")
        if self.hparams.loss not in ("bce", "softmax"):
            raise ValueError(f"supervised: loss must be 'bce' or 'softmax', got {self.hparams.loss!r}")
        self.classifier = nn.Linear(int(encoder.embedding_dim), int(self.hparams.num_classes))

    @classmethod
    def data_hparams(cls, vocabulary: list[str], num_clips: int | None = None,
                     given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if not vocabulary:
            raise ValueError("method supervised needs labelled shards (the manifest has no label vocabulary)")
        return {"num_classes": len(vocabulary)}

    def input_norm(self) -> dict[str, Any] | None:
        return {"type": "per_example"} if self.hparams.standardize else None

    def mix(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """W22 example mixing: every example with another one of the batch (never itself)."""
        b = x.shape[0]
        if b < 2 or not self.hparams.mix_beta:
            return x, labels
        a, c = (float(v) for v in self.hparams.mix_beta)
        lam = torch.distributions.Beta(a, c).sample((b,)).to(x.device, x.dtype)
        partner = (torch.arange(b, device=x.device) + torch.randint(1, b, (b,), device=x.device)) % b
        lx = lam.view(b, *([1] * (x.dim() - 1)))
        ly = lam.view(b, 1).to(labels.dtype)
        return lx * x + (1 - lx) * x[partner], ly * labels + (1 - ly) * labels[partner]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, labels = self._require(batch, "x", "labels")
        if labels.shape[-1] != self.classifier.out_features:
            raise ValueError(f"supervised: labels have {labels.shape[-1]} classes, head has {self.classifier.out_features}")
        if self.hparams.standardize:
            x = L.standardize_per_example(x)
        labels = labels.float()
        if self.training:
            x, labels = self.mix(x, labels)
        logits = self.classifier(self.encoder(x))
        if self.hparams.loss == "bce":
            return {"loss": F.binary_cross_entropy_with_logits(logits.float(), labels)}
        return {"loss": L.soft_target_ce(logits, labels)}
