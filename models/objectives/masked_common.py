"""Shared pieces of the masked-modeling objectives (``mae``, ``m2d``): mask bookkeeping, the light
transformer that fills mask tokens in (MAE's decoder, M2D's predictor), the ViT check, weight-decay groups.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

from ..encoders.vit import sincos_table
from .base import HParams


def split_mask(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``mask [B, N]`` bool (True = masked, equal count per row) -> ``(visible [B, Nv], masked [B, Nm])``
    patch indices, each ascending."""
    if mask.dim() != 2 or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool [B, n_patches] tensor, got {tuple(mask.shape)} {mask.dtype}")
    counts = mask.sum(1)
    if bool((counts != counts[0]).any()):
        raise ValueError("every example of a batch must mask the same number of patches (patch_mask sampler)")
    nm = int(counts[0])
    if nm < 1 or nm >= mask.shape[1]:
        raise ValueError(f"mask hides {nm} of {mask.shape[1]} patches; need at least one visible and one masked")
    order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)  # visible (0) first, then masked, each ascending
    return order[:, : mask.shape[1] - nm], order[:, mask.shape[1] - nm:]


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors (bf16/fp16 autocast) to float32 for the loss; float32/float64 unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x [B, N, C]`` rows at ``idx [B, n]`` -> ``[B, n, C]``."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class MaskTokenTransformer(nn.Module):
    """``Linear(in_dim, dim)`` of the visible tokens, a shared learnable mask token at every masked place,
    fixed 2-D sin-cos positions, ``depth`` pre-norm blocks, LayerNorm, ``Linear(dim, out_dim)``; returns the
    outputs at the masked places only.  MAE's decoder (He et al. 2022, Sec. 3; Audio-MAE Sec. 3.3) and M2D's
    predictor (Niizumi et al. 2023, Sec. 3 "Online network")."""

    def __init__(self, in_dim: int, dim: int, depth: int, num_heads: int, out_dim: int, grid_f: int,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.dim, self.grid_f = int(dim), int(grid_f)
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList([Block(dim, num_heads, mlp_ratio, qkv_bias=True,
                                           norm_layer=partial(nn.LayerNorm, eps=1e-6)) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, out_dim)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, z_vis: torch.Tensor, vis_idx: torch.Tensor, msk_idx: torch.Tensor, mask: torch.Tensor,
                n_time: int) -> torch.Tensor:
        b, n = mask.shape
        pos = sincos_table(self.grid_f, n_time, self.dim).to(z_vis)
        if pos.shape[0] != n:
            raise ValueError(f"mask has {n} patches, the grid {self.grid_f} x {n_time} has {pos.shape[0]}")
        v = self.embed(z_vis)
        full = torch.zeros(b, n, self.dim, dtype=v.dtype, device=v.device)
        full = full.scatter(1, vis_idx.unsqueeze(-1).expand(-1, -1, self.dim), v)
        full = full + self.mask_token.to(v.dtype) * mask.unsqueeze(-1).to(v.dtype) + pos[None]
        for blk in self.blocks:
            full = blk(full)
        return self.head(gather_rows(self.norm(full), msk_idx))


def check_patch_encoder(name: str, encoder: nn.Module, n_frames: int | None) -> None:
    """``ValueError`` unless ``encoder`` is a ViT patch encoder whose grid fits ``n_frames``."""
    missing = [m for m in ("patchify", "embed_patches", "encode_tokens") if not callable(getattr(encoder, m, None))]
    if missing:
        enc = getattr(encoder, "name", type(encoder).__name__)
        raise ValueError(f"{name}: needs a ViT patch encoder (vit_tiny, vit_small, vit_base); {enc} has no "
                         f"{', '.join(missing)}")
    p = int(encoder.patch_size)
    if n_frames is not None and n_frames % p:
        raise ValueError(f"{name}: n_frames={n_frames} is not a multiple of the {p}-frame patch")


@dataclass
class MaskedHParams(HParams):
    """What the masked-modeling methods share: MAE's optimisation (He et al. 2022, App. A.1; Audio-MAE and M2D
    follow it): AdamW (0.9, 0.95), base lr per 256 examples, warm-up + cosine, inputs standardised with the
    shards' mean/std.  Each method sets its own ratio, lengths and rates."""

    optimizer: str = "adamw"
    lr_scale_batch: bool = True
    betas: tuple[float, float] = (0.9, 0.95)
    schedule: str = "warmup_cosine"
    mask_ratio: float = 0.75
    normalize_input: bool = True  # log-mels standardised with the shards' mean/std (the papers' pre-normalisation)


class PatchMasked:
    """Mixin for masked-patch objectives (``mae``, ``m2d``): the encoder must be a ViT patch encoder, and the
    sampler's ``patch_mask`` stage gets the method's masking ratio and the encoder's patch size (plus the
    dataset-statistics normalisation when ``hp.normalize_input``)."""

    name: ClassVar[str]
    #: every masked-patch method reads crops plus their patch mask (True = masked)
    sampler: ClassVar[str] = "crop+patch_mask"
    batch_keys: ClassVar[tuple[str, ...]] = ("x", "mask")

    @classmethod
    def check(cls, encoder: nn.Module, n_frames: int | None = None) -> None:
        super().check(encoder, n_frames)  # type: ignore[misc]
        check_patch_encoder(cls.name, encoder, n_frames)

    @classmethod
    def sampler_options(cls, hp: Any, encoder: nn.Module) -> dict[str, Any]:
        return {"mask_ratio": float(hp.mask_ratio), "patch_size": int(encoder.patch_size),
                "normalize": True if getattr(hp, "normalize_input", False) else None}


def decay_groups(named: list[tuple[str, nn.Parameter]], lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups as in MAE (He et al. 2022, App. A.1): no weight decay on biases, norms and tokens."""
    no = [p for n, p in named if p.ndim <= 1 or n.endswith("token")]
    yes = [p for n, p in named if not (p.ndim <= 1 or n.endswith("token"))]
    return [{"name": "weights", "params": yes, "lr": lr, "weight_decay": weight_decay},
            {"name": "bias_norm", "params": no, "lr": lr, "weight_decay": 0.0}]
