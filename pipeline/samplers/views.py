"""``views``: two augmented views of one crop (BYOL-A, Niizumi et al. 2021 Sec. III; also DeLoRes,
Ghosh et al. 2022, which takes BYOL-A's augmentation module).

Per example, in the DataLoader worker: a random T = 96-frame crop (Sec. IV-A1), pre-normalisation
with the manifest's global mean/std (III-A), then for each of the two views log-mixup-exp against a
FIFO memory of 2048 past pre-normalised inputs with ``lambda ~ U(0, 0.4)`` (III-B) and a random resize
crop (III-C: virtual crop 1.5 T, scales [0.6, 1.5], frequency never past F, zeros outside, bicubic);
the input then enters the memory.  Per batch, after collation in the worker: post-normalisation with
the batch's mean/std (III-D).

The memory is worker-local: every DataLoader worker mixes with the inputs it produced itself.

Ablations (Table II / III): ``mixup=False``, ``rrc=False``, ``noise=True`` (Gaussian block N(0, 0.4)
with the log-mixup-exp calculation, IV-C), ``pre_norm=False``, ``post_norm=False``.

``augment_on='device'``: the worker only crops and pre-normalises (batch key ``x``); the trainer
applies ``info.device_transform`` (``pipeline.device.ViewsAugment``, batched torch, same options) on
its device to get ``x1``/``x2``.
"""
from __future__ import annotations

import numpy as np

from ..augment import MixupMemory, batch_normalize, gaussian_mix, linear, mixup, random_resize_crop, rrc_params
from .base import Sampler, register_sampler


@register_sampler("views")
class Views(Sampler):
    """Batch keys: ``x1``, ``x2`` ``[B, 1, F, T]`` (``x`` only with ``augment_on='device'``)."""

    keys = ("x1", "x2")
    device_keys = ("x1", "x2")  # what device_transform() makes of ``x`` with augment_on='device'

    def __init__(self, n_frames: int = 96, pre_norm: bool = True, mixup: bool = True, alpha: float = 0.4,
                 memory_size: int = 2048, noise: bool = False, noise_std: float = 0.4, rrc: bool = True,
                 virtual_crop: float = 1.5, time_scale: tuple = (0.6, 1.5), freq_scale: tuple = (0.6, 1.5),
                 post_norm: bool = True, augment_on: str = "worker"):
        super().__init__(normalize=pre_norm)
        self.n_frames = int(n_frames)
        self.pre_norm = bool(pre_norm)
        self.mixup = bool(mixup)
        self.alpha = float(alpha)
        self.memory_size = int(memory_size)
        self.noise = bool(noise)
        self.noise_std = float(noise_std)
        self.rrc = bool(rrc)
        self.virtual_crop = float(virtual_crop)
        self.time_scale = tuple(float(v) for v in time_scale)
        self.freq_scale = tuple(float(v) for v in freq_scale)
        self.post_norm = bool(post_norm)
        if augment_on not in ("worker", "device"):
            raise ValueError("augment_on must be 'worker' or 'device'")
        self.augment_on = augment_on
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("mixup alpha must lie in [0, 1]")
        if self.virtual_crop < 1.0 or self.time_scale[1] < 1.0 or self.freq_scale[1] < 1.0:
            raise ValueError("virtual_crop and the upper crop scales must be >= 1 (BYOL-A Sec. III-C)")
        self.keys = ("x",) if augment_on == "device" else ("x1", "x2")
        self.memory = MixupMemory(self.memory_size)

    def view(self, x: np.ndarray, rng: np.random.Generator, lin=None) -> np.ndarray:
        y = x
        if self.mixup:
            y, _ = mixup(y, self.memory, rng, self.alpha, lin)
        if self.noise:
            y, _ = gaussian_mix(y, rng, self.alpha, self.noise_std)
        if self.rrc:
            n_f, n_t = y.shape
            y = random_resize_crop(y, rrc_params(n_f, n_t, rng, self.virtual_crop, self.time_scale, self.freq_scale),
                                   self.virtual_crop)
        return y if y is not x else x.copy()

    def __call__(self, mel, meta, rng):
        x = self.norm(self.crop(mel, rng))
        if self.augment_on == "device":
            return {"x": x[None]}
        lin = linear(x) if self.mixup else None  # exp(x - max) once, shared by both views and the memory
        v1 = self.view(x, rng, lin)
        v2 = self.view(x, rng, lin)
        if self.mixup:
            self.memory.push(x, lin)
        return {"x1": v1[None], "x2": v2[None]}

    def collate(self, batch, rng):
        if self.post_norm and self.augment_on == "worker":
            batch["x1"], batch["x2"] = batch_normalize([batch["x1"], batch["x2"]], batch.get("valid"), inplace=True)
        return batch

    def device_transform(self):
        if self.augment_on != "device":
            return None
        from ..device import ViewsAugment

        return ViewsAugment(mixup=self.mixup, alpha=self.alpha, memory_size=self.memory_size, noise=self.noise,
                            noise_std=self.noise_std, rrc=self.rrc, virtual_crop=self.virtual_crop,
                            time_scale=self.time_scale, freq_scale=self.freq_scale, post_norm=self.post_norm)
