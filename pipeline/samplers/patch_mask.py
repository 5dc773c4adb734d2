"""``patch_mask``: random unstructured patch masking for the masked-modeling objectives (``mae``, ``m2d``).

An add-on stage: ``crop+patch_mask`` crops ``N`` frames (the ``crop`` sampler) and adds ``mask``, a bool
vector over the ``(F/p) x (N/p)`` patch grid (True = masked), in the encoders' frequency-major patch order
(index ``f * (N/p) + t``, ``models/encoders/vit.py``).

* Random unstructured masking (Audio-MAE, Huang et al. 2022, Sec. 3.2 / Table 2a: "unstructured" is best
  for pre-training; M2D, Niizumi et al. 2023, Sec. 3 "random masking"): a uniformly random subset of
  ``round(ratio * n_patches)`` patches is masked, the rest is visible.
* Every example of a batch gets the same number of visible patches (it depends only on the grid size and
  the ratio), so the encoder runs on a dense ``[B, n_visible, D]`` tensor with no padding.
* Reproducible: the draws come from the stream's generator, seeded by (seed, rank, worker, resume step).

Alone (``patch_mask``) it crops like ``crop`` itself.  ``mask_ratio`` defaults to M2D's 0.7 (the trainer
passes the objective's ``mask_ratio``: 0.8 for ``mae``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import SAMPLERS, Sampler


def n_masked(n_patches: int, ratio: float) -> int:
    """Masked patches of a grid: ``round(ratio * n)``, at least one visible and one masked patch."""
    return int(min(max(round(ratio * n_patches), 1), n_patches - 1))


def random_mask(n_patches: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Bool ``[n_patches]``, exactly :func:`n_masked` True entries at uniformly random places."""
    m = np.zeros(n_patches, dtype=bool)
    m[rng.permutation(n_patches)[:n_masked(n_patches, ratio)]] = True
    return m


@SAMPLERS.register("patch_mask")
class PatchMask(Sampler):
    """Batch key added: ``mask`` ``[B, n_patches]`` bool (alone also ``x`` ``[B, 1, F, N]``)."""

    keys = ("x", "mask")
    addon_keys = ("mask",)

    def __init__(self, n_frames: int = 608, mask_ratio: float = 0.7, patch_size: int = 16, key: str = "x"):
        super().__init__(False)
        self.n_frames, self.mask_ratio, self.patch_size, self.key = int(n_frames), float(mask_ratio), int(patch_size), key
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"patch_mask: mask_ratio must lie in (0, 1), got {mask_ratio}")
        if self.patch_size < 1:
            raise ValueError("patch_mask: patch_size must be >= 1")

    def grid(self, n_mels: int, n_frames: int) -> tuple[int, int]:
        p = self.patch_size
        if n_mels % p or n_frames % p:
            raise ValueError(f"patch_mask: input {n_mels} mels x {n_frames} frames is not a whole number of "
                             f"{p}x{p} patches (use a multiple of {p} for --hp n_frames and the mel count)")
        return n_mels // p, n_frames // p

    def augment(self, ex: dict, mel: Any, rng: np.random.Generator) -> dict:
        x = ex[self.key]
        gf, gt = self.grid(int(x.shape[-2]), int(x.shape[-1]))
        ex["mask"] = random_mask(gf * gt, self.mask_ratio, rng)
        return ex

    def __call__(self, mel, meta, rng):
        return self.augment({"x": self.crop(mel, rng)[None]}, mel, rng)
