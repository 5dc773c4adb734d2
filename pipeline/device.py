"""Batched BYOL-A augmentations in torch, for the training device (``views`` with ``augment_on='device'``).

Same blocks and defaults as the per-example worker path (``pipeline.augment``; Niizumi et al. 2021
Sec. III): log-mixup-exp against a FIFO memory of past pre-normalised inputs (here one memory on the
device, shared by the rank's batches instead of one per worker), optional Gaussian block, random
resize crop as two batched bicubic matrices (``bmm``), BYOL-A v2's random linear fader (``fader=True``,
``views_v2``: Niizumi et al., TASLP 2023, Sec. III-A), post-normalisation over the batch.  The
worker yields ``x`` (cropped, pre-normalised); ``ViewsAugment()(batch)`` returns ``x1``/``x2``.
Within a batch every example is mixed with entries pushed by earlier batches only.
"""
from __future__ import annotations

import torch
from torch import nn

from .augment import bicubic_matrices_torch


class ViewsAugment(nn.Module):
    def __init__(self, mixup: bool = True, alpha: float = 0.4, memory_size: int = 2048, noise: bool = False,
                 noise_std: float = 0.4, rrc: bool = True, virtual_crop: float = 1.5, time_scale=(0.6, 1.5),
                 freq_scale=(0.6, 1.5), post_norm: bool = True, fader: bool = False, fader_gain: float = 1.0,
                 seed: int | None = None):
        super().__init__()
        self.mixup, self.alpha, self.memory_size = bool(mixup), float(alpha), int(memory_size)
        self.noise, self.noise_std, self.rrc = bool(noise), float(noise_std), bool(rrc)
        self.virtual_crop = float(virtual_crop)
        self.time_scale = tuple(float(v) for v in time_scale)
        self.freq_scale = tuple(float(v) for v in freq_scale)
        self.post_norm = bool(post_norm)
        self.fader, self.fader_gain = bool(fader), float(fader_gain)
        if self.fader_gain < 0:
            raise ValueError("fader_gain must be >= 0")
        self.seed = seed
        self._gen: torch.Generator | None = None
        self.register_buffer("memory", torch.empty(0), persistent=False)
        self.mem_n = 0
        self.mem_pos = 0

    def _rand(self, *shape, device) -> torch.Tensor:
        if self.seed is not None and (self._gen is None or self._gen.device != torch.device(device)):
            self._gen = torch.Generator(device=device)
            self._gen.manual_seed(int(self.seed))
        return torch.rand(*shape, device=device, generator=self._gen if self.seed is not None else None)

    def _mix(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        lam = self._rand(x.shape[0], device=x.device) * self.alpha
        shape = (-1,) + (1,) * (x.dim() - 1)
        la = torch.log1p(-lam).view(shape)
        lb = torch.log(lam).view(shape)  # -inf for lam == 0: logaddexp then returns x exactly
        return torch.logaddexp(x + la, other + lb)

    def _rrc(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n_f, n_t = x.shape
        dev = x.device
        canvas_w = int(n_t * self.virtual_crop)
        x0 = (canvas_w - n_t) // 2
        u = self._rand(4, b, device=dev).double()
        fs, ts = self.freq_scale, self.time_scale
        h = torch.floor(torch.clamp(fs[0] + (fs[1] - fs[0]) * u[0], max=1.0) * n_f).clamp(1, n_f)
        w = torch.floor((ts[0] + (ts[1] - ts[0]) * u[1]) * n_t).clamp(1, canvas_w)
        i = torch.floor(u[2] * (n_f - h + 1)).clamp(max=n_f - h)
        j = torch.floor(u[3] * (canvas_w - w + 1)).clamp(max=canvas_w - w)
        mf = bicubic_matrices_torch(i, h, 0, n_f, n_f)  # [B, F, F]
        mt = bicubic_matrices_torch(j, w, x0, n_t, n_t)  # [B, T, T]
        y = torch.bmm(torch.bmm(mf, x.reshape(b, n_f, n_t) if c == 1 else x[:, 0]), mt.transpose(1, 2))
        return y.view(b, 1, n_f, n_t)

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.mixup and self.mem_n > 0:
            k = torch.floor(self._rand(x.shape[0], device=x.device) * self.mem_n).long().clamp(max=self.mem_n - 1)
            y = self._mix(y, self.memory[k])
        if self.noise:
            z = torch.randn(x.shape, device=x.device, generator=self._gen if self.seed is not None else None) * self.noise_std
            y = self._mix(y, z)
        if self.rrc:
            y = self._rrc(y)
        if self.fader:
            y = self._fade(y)
        return y

    def _fade(self, y: torch.Tensor) -> torch.Tensor:
        """Random linear fader (BYOL-A v2 Sec. III-A): ``+ a + (b - a) t / (T - 1)``, ``a, b ~ U(-gain, gain)``
        per example, the same rule as ``pipeline.samplers.views_v2.random_linear_fader``."""
        b, n_t = y.shape[0], y.shape[-1]
        ab = (self._rand(2, b, device=y.device) * 2.0 - 1.0) * self.fader_gain
        t = torch.arange(n_t, device=y.device, dtype=y.dtype) / max(n_t - 1, 1)
        ramp = ab[0, :, None] + (ab[1, :, None] - ab[0, :, None]) * t[None, :]  # [B, T]
        return y + ramp.view(b, *([1] * (y.dim() - 2)), n_t).to(y.dtype)

    @torch.no_grad()
    def _push(self, x: torch.Tensor) -> None:
        if self.memory_size <= 0 or x.shape[0] == 0:
            return
        if self.memory.numel() == 0 or self.memory.shape[1:] != x.shape[1:] or self.memory.device != x.device:
            self.memory = torch.empty((self.memory_size,) + tuple(x.shape[1:]), device=x.device, dtype=x.dtype)
            self.mem_n = self.mem_pos = 0
        x = x[-self.memory_size:]
        idx = (self.mem_pos + torch.arange(x.shape[0], device=x.device)) % self.memory_size
        self.memory[idx] = x
        self.mem_pos = (self.mem_pos + x.shape[0]) % self.memory_size
        self.mem_n = min(self.mem_n + x.shape[0], self.memory_size)

    @torch.no_grad()
    def forward(self, batch: dict) -> dict:
        x = batch["x"].float()
        valid = batch.get("valid")
        if valid is not None:
            valid = valid.to(x.device).bool()
        v1, v2 = self._view(x), self._view(x)
        if self.mixup:
            self._push(x if valid is None else x[valid])
        if self.post_norm:
            sel = torch.cat([v1, v2]) if valid is None else torch.cat([v1[valid], v2[valid]])
            if sel.numel():
                m = sel.mean()
                s = sel.std(unbiased=False) + 1e-8
                v1, v2 = (v1 - m) / s, (v2 - m) / s
        out = {k: v for k, v in batch.items() if k != "x"}
        out["x1"], out["x2"] = v1, v2
        return out

    def extra_repr(self) -> str:
        return (f"mixup={self.mixup}, alpha={self.alpha}, memory_size={self.memory_size}, noise={self.noise}, "
                f"rrc={self.rrc}, virtual_crop={self.virtual_crop}, fader={self.fader}, post_norm={self.post_norm}")


__all__ = ["ViewsAugment"]
