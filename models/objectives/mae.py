"""``mae``: Audio-MAE (Huang et al., NeurIPS 2022, arXiv 2207.06405), the MAE recipe (He et al. 2022) on log-mels.

The encoder (ViT, ``models/encoders/vit.py``) sees only the visible patches (Sec. 3.2: unstructured random
masking at ratio 0.8, Table 2a/b); a light transformer decoder (Sec. 3.3: 512-d, 16 heads, 16 layers) takes
their latents plus a learnable mask token at each masked place with fixed sin-cos positions and predicts each
masked patch's 16 x 16 log-mel values.  Target: the patch standardised by its own mean and standard deviation
(MAE's "normalized pixels", He et al. 2022 Sec. 3 / Table 1d; Audio-MAE keeps it):
``t = (x_p - mean(x_p)) / sqrt(var(x_p) + 1e-6)`` (population variance).
Loss: MSE over the masked patches only, ``L = mean_{masked p} mean_i (y_{p,i} - t_{p,i})^2``.

Optimisation (Audio-MAE Sec. 4.1 / App. pre-training table, as we read it): AdamW, betas (0.9, 0.95), weight
decay 1e-4, base lr 2e-4 x batch/256, batch 512, 32 epochs with 3 warm-up epochs, cosine.  Input: 128 mels x
1024 frames (10.24 s) -> 8 x 64 = 512 patches.  Audio-MAE's best decoder uses local (shifted-window)
attention; ours uses global attention (their "global" variant, Table 2c), see docs/objectives.md.

Batch: ``x`` ``[B, 1, F, N]``, ``mask`` ``[B, (F/16)(N/16)]`` bool (sampler ``crop+patch_mask``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from .base import OBJECTIVES, Objective
from .masked_common import MaskedHParams, MaskTokenTransformer, PatchMasked, at_least_fp32, decay_groups, gather_rows, split_mask


@dataclass
class MAEHParams(MaskedHParams):
    lr: float = 2e-4  # base lr per 256 examples (lr_scale_batch)
    batch_size: int = 512
    weight_decay: float = 1e-4
    warmup_epochs: float = 3.0
    epochs: int | None = 32
    n_frames: int = 1024
    mask_ratio: float = 0.8
    decoder_dim: int = 512
    decoder_depth: int = 16
    decoder_heads: int = 16
    norm_pix_loss: bool = True
    source: str = ("Huang et al. 2022 (Audio-MAE), Secs. 3.2-3.3, 4.1: ratio 0.8 unstructured, decoder 512-d x 16, "
                   "AdamW (0.9, 0.95) wd 1e-4, blr 2e-4, batch 512, 32 epochs (3 warm-up), 128 x 1024 input")


def patch_targets(patches: torch.Tensor, norm: bool, eps: float = 1e-6) -> torch.Tensor:
    """Per-patch standardisation ``(x - mean) / sqrt(var + eps)`` over each patch's pixels (last axis)."""
    if not norm:
        return patches
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, unbiased=False, keepdim=True)
    return (patches - mean) / torch.sqrt(var + eps)


@OBJECTIVES.register("mae")
class MAEObjective(PatchMasked, Objective):
    """``mae``. Batch: ``x`` ``[B, 1, F, N]`` + ``mask`` ``[B, n_patches]`` (True = masked)."""

    default_encoder = ("vit_base", {"n_mels": 128, "n_frames": 1024})
    frontend_preset = "audio_mae"
    HParams = MAEHParams
    #: a CPU-sized setting of this method for health benchmarks (``make bench-methods``) and quick runs on the
    #: 64-mel demo shards: vit_tiny on 96 frames (4 x 6 patches) with the decoder scaled down with the encoder
    #: (the paper's 512-d decoder is 2/3 of ViT-B's width; 512-d on vit_tiny would cost 5x the encoder)
    test_config = {"hparams": {"n_frames": 96, "decoder_depth": 1, "decoder_dim": 16, "decoder_heads": 2},
                   "encoder": ("vit_tiny", {"n_frames": 96, "depth": 2}),
                   "tiny_encoder": ("vit_tiny", {"n_mels": 16, "n_frames": 16, "patch_size": 4, "depth": 1})}
    small_config = {"encoder": "vit_tiny", "encoder_kwargs": {"n_frames": 96},
                    "hparams": {"n_frames": 96, "decoder_dim": 128, "decoder_depth": 2, "decoder_heads": 4}}

    def __init__(self, encoder: nn.Module, **hparams: Any):
        super().__init__(encoder, **hparams)
        hp = self.hparams
        p = int(encoder.patch_size)
        self.decoder = MaskTokenTransformer(encoder.dim, hp.decoder_dim, hp.decoder_depth, hp.decoder_heads,
                                            p * p, encoder.n_mels // p)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, mask = self._require(batch, "x", "mask")
        enc = self.encoder
        n_time = x.shape[-1] // enc.patch_size
        patches = enc.patchify(x)
        vis, msk = split_mask(mask.bool())
        z = enc.encode_tokens(enc.embed_patches(gather_rows(patches, vis), vis, n_time))
        pred = self.decoder(z, vis, msk, mask.bool(), n_time)  # [B, Nm, p*p]
        target = patch_targets(gather_rows(patches, msk), self.hparams.norm_pix_loss)
        loss = (at_least_fp32(pred) - at_least_fp32(target)).pow(2).mean(dim=-1).mean()
        return {"loss": loss}

    def param_groups(self, batch_size: int | None = None) -> list[dict[str, Any]]:
        return decay_groups(self.trainable_named_parameters(), self._scaled_lr(self.hparams.lr, batch_size),
                            self.hparams.weight_decay)
