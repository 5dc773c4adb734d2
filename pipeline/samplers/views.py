"""``views``: two augmented views of one crop (BYOL-A, Niizumi et al. 2021 Sec. III; also DeLoRes,
Ghosh et al. 2022, which takes BYOL-A's augmentation module).

Per example, in the DataLoader worker: a random T = 96-frame crop (Sec. IV-A1), pre-normalisation
with the manifest's global mean/std (III-A), then for each of the two views log-mixup-exp against a
FIFO memory of 2048 past pre-normalised inputs with ``lambda ~ U(0, 0.4)`` (III-B) and a random resize
crop (III-C: virtual crop 1.5 T, scales [0.6, 1.5], frequency never past F, zeros outside, bicubic);
the input then enters the memory.  Per batch, after collation in the worker: post-normalisation with
the batch's mean/std (III-D).

The memory is worker-local: every DataLoader worker mixes with the inputs it produced itself.

Batched (the default in the worker): ``__call__`` only crops and pre-normalises (``x``); ``collate``
makes both views of the whole batch with one draw of every random parameter, the same memory rule as
one example at a time (row ``r`` mixes with the memory as it was after rows ``< r`` were pushed; both
views of a row see the same memory), log-mixup-exp computed only over the part of the input that the
view's random resize crop reads, and the crop's bicubic matrices.  The values equal the per-example
functions (``mixup`` then ``random_resize_crop``) for the same parameters; ``per_example=True`` keeps
the per-example path (also used with ``noise=True``).

Ablations (Table II / III): ``mixup=False``, ``rrc=False``, ``noise=True`` (Gaussian block N(0, 0.4)
with the log-mixup-exp calculation, IV-C), ``pre_norm=False``, ``post_norm=False``.

``augment_on='device'``: the worker only crops and pre-normalises (batch key ``x``); the trainer
applies ``info.device_transform`` (``pipeline.device.ViewsAugment``, batched torch, same options) on
its device to get ``x1``/``x2``.  ``augment_on='auto'`` (the default) is for the trainer to settle
(:func:`pipeline.samplers.base.resolve_augment_on`: ``device`` on a GPU, ``worker`` elsewhere); a
sampler built outside the trainer reads it as ``worker``.
"""
from __future__ import annotations

import math

import numpy as np

from ..augment import (
    BlockMemory,
    MixupMemory,
    batch_normalize,
    bicubic_matrix,
    bicubic_matrix_t,
    canvas_offset,
    gaussian_mix,
    linear,
    mixup,
    random_resize_crop,
    rrc_params,
    rrc_params_batch,
)
from .base import SAMPLERS, Sampler


@SAMPLERS.register("views")
class Views(Sampler):
    """Batch keys: ``x1``, ``x2`` ``[B, 1, F, T]`` (``x`` only with ``augment_on='device'``)."""

    keys = ("x1", "x2")
    device_keys = ("x1", "x2")  # what device_transform() makes of ``x`` with augment_on='device'
    device_augment = True  # augment_on='auto' can move the augmentations to the training device

    def __init__(self, n_frames: int = 96, pre_norm: bool = True, mixup: bool = True, alpha: float = 0.4,
                 memory_size: int = 2048, noise: bool = False, noise_std: float = 0.4, rrc: bool = True,
                 virtual_crop: float = 1.5, time_scale: tuple = (0.6, 1.5), freq_scale: tuple = (0.6, 1.5),
                 post_norm: bool = True, augment_on: str = "auto", per_example: bool = False):
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
        if augment_on not in ("auto", "worker", "device"):
            raise ValueError("augment_on must be 'auto', 'worker' or 'device'")
        self.augment_on = "worker" if augment_on == "auto" else augment_on
        self.per_example = bool(per_example)
        self.last_params: dict[str, np.ndarray] | None = None  # the batch's draws (tests, inspection)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("mixup alpha must lie in [0, 1]")
        if self.virtual_crop < 1.0 or self.time_scale[1] < 1.0 or self.freq_scale[1] < 1.0:
            raise ValueError("virtual_crop and the upper crop scales must be >= 1 (BYOL-A Sec. III-C)")
        self.keys = ("x",) if augment_on == "device" else ("x1", "x2")
        self.memory = BlockMemory(self.memory_size) if self.batched else MixupMemory(self.memory_size)

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

    @property
    def stateful(self) -> bool:  # type: ignore[override]
        """The mixup memory of a worker holds its earlier crops."""
        return bool(self.mixup) and self.augment_on == "worker"

    @property
    def batched(self) -> bool:
        return self.augment_on == "worker" and not self.per_example and not self.noise

    def __call__(self, mel, meta, rng):
        x = self.norm(self.crop(mel, rng))
        if self.augment_on == "device" or self.batched:
            return {"x": x[None]}
        return self.example_views(x, rng)

    def example_views(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Both views of one pre-normalised crop, one example at a time (pushes ``x`` to the memory)."""
        lin = linear(x) if self.mixup else None  # exp(x - max) once, shared by both views and the memory
        v1 = self.view(x, rng, lin)
        v2 = self.view(x, rng, lin)
        if self.mixup:
            self.memory.push(x, lin)
        return {"x1": v1[None], "x2": v2[None]}

    def collate(self, batch, rng):
        if self.batched and "x" in batch:
            x = batch.pop("x")
            batch["x1"], batch["x2"] = self.batch_views(x[:, 0], batch.get("valid"), rng)
        if self.post_norm and self.augment_on == "worker":
            batch["x1"], batch["x2"] = batch_normalize([batch["x1"], batch["x2"]], batch.get("valid"), inplace=True)
        return batch

    def device_transform(self):
        if self.augment_on != "device":
            return None
        from ..device import ViewsAugment

        return ViewsAugment(mixup=self.mixup, alpha=self.alpha, memory_size=self.memory_size, noise=self.noise,
                            noise_std=self.noise_std, rrc=self.rrc, virtual_crop=self.virtual_crop,
                            time_scale=self.time_scale, freq_scale=self.freq_scale, post_norm=self.post_norm,
                            **self.device_options())

    def device_options(self) -> dict:
        """Extra ``ViewsAugment`` options of a subclass (``views_v2``: the fader)."""
        return {}

    def batch_views(self, x: np.ndarray, valid: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``x1, x2 [B, 1, F, T]`` from pre-normalised crops ``x [B, F, T]``; pushes the valid rows to the memory.

        Draws per view: memory entry ``k ~ U{0..n-1}`` and ``lambda ~ U(0, alpha)`` (BYOL-A Sec. III-B),
        then the crop ``(i, j, h, w)`` (III-C), all in one call each.  Row ``r`` (``c`` valid rows before
        it) sees ``n = min(n0 + c, size)`` entries, exactly as if the rows had been pushed one by one.
        """
        b, n_f, n_t = x.shape
        x = np.ascontiguousarray(x, dtype=np.float32)
        keep = np.ones(b, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        before = np.cumsum(keep) - keep  # valid rows before each row
        out = np.empty((2, b, 1, n_f, n_t), dtype=np.float32)  # every view is written below (zero-filling cost ~5 us/row)
        if self.mixup:
            mx = x.reshape(b, -1).max(axis=1).astype(np.float64)
            lin = np.subtract(x, mx.astype(np.float32)[:, None, None])
            np.exp(lin, out=lin)  # exp(x - max), as MixupMemory keeps it
            mem = self.memory
            size, t0 = max(self.memory_size, 0), mem.total
            avail = np.minimum(t0 + before, size)  # entries row r can draw from (FIFO of the last `size` pushed)
            num = t0 + before - avail + np.floor(rng.random((2, b)) * avail).astype(np.int64)  # entry number
            lam = rng.uniform(0.0, self.alpha, size=(2, b))
            lam = np.where(avail > 0, lam, 0.0)
            from_batch = num >= t0  # an earlier row of this batch
            vrows = np.flatnonzero(keep)
            src_row = vrows[np.where(from_batch, num - t0, 0)] if vrows.size else np.zeros((2, b), dtype=np.int64)
            blocks, blk, blk_row, mk_mem = mem.rows(np.where(from_batch, max(t0 - 1, 0), num))
            mk_all = np.where(from_batch, mx[src_row], mk_mem)
            lam_l, fb_l, src_l, blk_l, row_l, mk_l = (v.tolist() for v in (lam, from_batch, src_row, blk, blk_row, mk_all))
            mx_l = mx.tolist()
        else:
            lam = np.zeros((2, b))
            lam_l = lam.tolist()
        if self.rrc:
            i, j, h, w = rrc_params_batch(n_f, n_t, rng, 2 * b, self.virtual_crop, self.time_scale, self.freq_scale)
            i, j, h, w = (v.reshape(2, b) for v in (i, j, h, w))
            i_l, j_l, h_l, w_l = i.tolist(), j.tolist(), h.tolist(), w.tolist()
            x0 = canvas_offset(n_t, self.virtual_crop)
        for v in range(2):
            for r in range(b):
                if self.rrc:
                    ii, jj, hh, ww = i_l[v][r], j_l[v][r], h_l[v][r], w_l[v][r]
                    a, e = max(jj, x0), min(jj + ww, x0 + n_t)  # canvas columns holding the input
                    if e <= a:
                        out[v, r] = 0.0  # the crop lies outside the input: zeros
                        continue
                    rows, cols = slice(ii, ii + hh), slice(a - x0, e - x0)
                else:
                    rows, cols = slice(None), slice(None)
                lv = lam_l[v][r]
                if lv > 0.0:  # log-mixup-exp over the region only (same operations as augment.mixup)
                    ek = lin[src_l[v][r]] if fb_l[v][r] else blocks[blk_l[v][r]][row_l[v][r]]
                    mk = mk_l[v][r]
                    m = max(mx_l[r], mk)
                    part = lin[r, rows, cols] * np.float32((1.0 - lv) * math.exp(mx_l[r] - m))
                    part += ek[rows, cols] * np.float32(lv * math.exp(mk - m))
                    np.log(part, out=part)
                    part += np.float32(m)
                else:
                    part = x[r, rows, cols]
                if not self.rrc:
                    out[v, r, 0] = part
                    continue
                mt = bicubic_matrix_t(ww, n_t)[a - jj:e - jj]
                if hh == n_f:
                    np.matmul(part, mt, out=out[v, r, 0])
                elif hh * (e - a) * n_t + n_f * hh * n_t < n_f * hh * (e - a) + n_f * (e - a) * n_t:
                    np.matmul(bicubic_matrix(hh, n_f), part @ mt, out=out[v, r, 0])
                else:
                    np.matmul(bicubic_matrix(hh, n_f) @ part, mt, out=out[v, r, 0])
        if self.mixup:
            self.memory.push_many(lin if keep.all() else lin[keep], mx if keep.all() else mx[keep])
        self.last_params = {"lam": lam, **({"h": h, "w": w, "i": i, "j": j} if self.rrc else {}),
                            **({"from_batch": from_batch, "src_row": src_row, "number": num} if self.mixup else {})}
        return out[0], out[1]
