"""``m2d``: Masked Modeling Duo (Niizumi et al., ICASSP 2023, arXiv 2210.14648; TASLP 2024, arXiv 2404.06095).

Sec. 3 (both papers): the patches are split at random into visible ``x_v`` and masked ``x_m``.

* Online network: the encoder ``f_theta`` sees only ``x_v``: ``z_v = f_theta(x_v)``; the predictor
  ``g_theta`` (a transformer, 512-d, 8 layers, 16 heads as MAE's decoder) takes ``z_v`` plus a mask token at
  every masked place, with positional encodings, and outputs ``z_hat`` for all places, of which the masked
  ones ``z_hat_m`` are kept.
* Target network: the momentum encoder ``f_xi`` sees **only the masked patches**:
  ``z_m = f_xi(x_m)``, standardised per patch over its features (Fig. 2 "standardize").  No gradient reaches
  it; after each step ``xi <- tau xi + (1 - tau) theta``.
* Loss: the normalised MSE ``L = || l2(z_hat_m) - l2(z_m) ||^2`` (= 2 - 2 cos), averaged over the masked
  patches of the batch.

EMA decay ``tau``: ramped linearly from 0.99995 at the first step to 0.99999 at the last (the papers' EMA
schedule as we read Sec. 4.1 / IV-A; the trainer tells the objective its run length, ``set_total_steps``).
Masking ratio 0.7 (TASLP 2024's general-purpose M2D, "M2D/0.7"; preset ``icassp2023`` gives the ICASSP
paper's 0.6).  Input 80 mels x 608 frames (about 6 s) -> 5 x 38 = 190 patches of 16 x 16.  Optimisation
(MAE's recipe, which M2D follows): AdamW (0.9, 0.95), weight decay 0.05, base lr 3e-4 x batch/256, batch
2048, 300 epochs with 20 warm-up epochs, cosine.  The step counter of the EMA ramp is a checkpointed buffer,
so ``--resume`` continues the ramp exactly.

Batch: ``x`` ``[B, 1, F, N]``, ``mask`` ``[B, (F/16)(N/16)]`` bool (sampler ``crop+patch_mask``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import OBJECTIVES, Objective, ema_update, make_target
from .masked_common import MaskedHParams, MaskTokenTransformer, PatchMasked, at_least_fp32, decay_groups, gather_rows, split_mask


@dataclass
class M2DHParams(MaskedHParams):
    lr: float = 3e-4  # base lr per 256 examples (lr_scale_batch)
    batch_size: int = 2048
    weight_decay: float = 0.05
    warmup_epochs: float = 20.0
    epochs: int | None = 300
    n_frames: int = 608
    mask_ratio: float = 0.7
    ema_tau_start: float = 0.99995
    ema_tau: float | None = 0.99999  # value at the end of the ramp
    predictor_dim: int = 512
    predictor_depth: int = 8
    predictor_heads: int = 16
    source: str = ("Niizumi et al. 2023/2024 (M2D), Sec. 3 / 4.1 / IV-A: ratio 0.7, tau 0.99995 -> 0.99999, predictor "
                   "512-d x 8, AdamW (0.9, 0.95) wd 0.05, blr 3e-4, batch 2048, 300 epochs (20 warm-up), 80 x 608 input")

    PRESETS = ("icassp2023",)

    @classmethod
    def icassp2023(cls) -> "M2DHParams":
        """Niizumi et al., ICASSP 2023 (arXiv 2210.14648), Sec. 4.1: masking ratio 0.6."""
        return cls(mask_ratio=0.6)


def standardize_tokens(z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-token standardisation over the feature axis (LayerNorm without affine)."""
    return F.layer_norm(z, z.shape[-1:], eps=eps)


def normalized_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean over tokens of || pred/|pred| - target/|target| ||^2`` (= 2 - 2 cos)."""
    return (F.normalize(at_least_fp32(pred), dim=-1) - F.normalize(at_least_fp32(target), dim=-1)).pow(2).sum(-1).mean()


@OBJECTIVES.register("m2d")
class M2DObjective(PatchMasked, Objective):
    """``m2d``. Batch: ``x`` ``[B, 1, F, N]`` + ``mask`` ``[B, n_patches]`` (True = masked)."""

    default_encoder = ("vit_base", {"n_mels": 80, "n_frames": 608})
    frontend_preset = "m2d"
    HParams = M2DHParams
    #: a CPU-sized setting of this method for health benchmarks (``make bench-methods``) and quick runs on the
    #: 64-mel demo shards: vit_tiny on 96 frames (4 x 6 patches) with the predictor scaled down with the encoder
    #: (the paper's 512-d predictor is 2/3 of ViT-B's width; 512-d on vit_tiny would cost 5x the encoder)
    test_config = {"hparams": {"n_frames": 96, "predictor_depth": 1, "predictor_dim": 16, "predictor_heads": 2},
                   "encoder": ("vit_tiny", {"n_frames": 96, "depth": 2}),
                   "tiny_encoder": ("vit_tiny", {"n_mels": 16, "n_frames": 16, "patch_size": 4, "depth": 1})}
    small_config = {"encoder": "vit_tiny", "encoder_kwargs": {"n_frames": 96},
                    "hparams": {"n_frames": 96, "predictor_dim": 128, "predictor_depth": 2, "predictor_heads": 4}}
    ema_pairs = (("target_encoder", "encoder"),)

    def __init__(self, encoder: nn.Module, **hparams: Any):
        super().__init__(encoder, **hparams)
        hp = self.hparams
        if not 0.0 <= hp.ema_tau_start <= 1.0 or not 0.0 <= float(hp.ema_tau) <= 1.0:
            raise ValueError("m2d: ema_tau_start and ema_tau must lie in [0, 1]")
        p = int(encoder.patch_size)
        self.predictor = MaskTokenTransformer(encoder.dim, hp.predictor_dim, hp.predictor_depth, hp.predictor_heads,
                                              encoder.dim, encoder.n_mels // p)
        self.target_encoder = make_target(self.encoder)
        self.register_buffer("ema_step", torch.zeros((), dtype=torch.long))
        self.total_steps: int | None = hp.total_steps

    def set_total_steps(self, steps: int) -> None:
        """Length of the run, over which the EMA decay ramps from ``ema_tau_start`` to ``ema_tau``; an explicit
        ``hparams.total_steps`` (the planned length) wins over the trainer's ``steps``."""
        self.total_steps = int(self.hparams.total_steps or steps)

    def ema_tau_now(self) -> float:
        start, end = float(self.hparams.ema_tau_start), float(self.hparams.ema_tau)
        if not self.total_steps or self.total_steps <= 1:
            return end
        frac = min(int(self.ema_step) / (self.total_steps - 1), 1.0)
        return start + (end - start) * frac

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, mask = self._require(batch, "x", "mask")
        mask = mask.bool()
        enc = self.encoder
        n_time = x.shape[-1] // enc.patch_size
        patches = enc.patchify(x)
        vis, msk = split_mask(mask)
        z_v = enc.encode_tokens(enc.embed_patches(gather_rows(patches, vis), vis, n_time))
        pred = self.predictor(z_v, vis, msk, mask, n_time)  # [B, Nm, D]
        with torch.no_grad():
            tgt = self.target_encoder
            z_m = standardize_tokens(tgt.encode_tokens(tgt.embed_patches(gather_rows(patches, msk), msk, n_time)))
        loss = normalized_mse(pred, z_m)
        return {"loss": loss, "ema_tau": torch.tensor(self.ema_tau_now())}

    @torch.no_grad()
    def after_step(self) -> None:
        ema_update(self.target_encoder, self.encoder, self.ema_tau_now())
        self.ema_step.add_(1)  # type: ignore[operator]

    def param_groups(self, batch_size: int | None = None) -> list[dict[str, Any]]:
        return decay_groups(self.trainable_named_parameters(), self._scaled_lr(self.hparams.lr, batch_size),
                            self.hparams.weight_decay)
