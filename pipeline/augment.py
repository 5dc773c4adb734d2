"""Log-mel augmentations used by the samplers (numpy, per example) and their batched torch twins.

BYOL-A blocks (Niizumi et al. 2021, Sec. III, "BYOL for Audio"):

* pre-normalisation (III-A): ``(x - mu) / sigma`` with the training set's statistics -- here the
  manifest's global mean/std, merged across shard directories;
* log-mixup-exp (III-B, Eq. 2): ``log((1 - l) exp(x) + l exp(x_k))``, ``l ~ U(0, alpha)``, ``x_k`` a
  random entry of a FIFO memory of past (pre-normalised) inputs, 2048 entries, alpha 0.4;
* Gaussian-noise block (IV-C, Table II ablation): the same calculation with ``x_k ~ N(0, 0.4)``
  (we read 0.4 as the standard deviation);
* random resize crop (III-C): a virtual canvas 1.5 T wide (frequency: F, the input is centred),
  crop ``F_C = floor(min(U(0.6, 1.5), 1) F)`` x ``T_C = floor(U(0.6, 1.5) T)`` at a random place,
  outside of the input is zero, bicubic resize back to F x T;
* post-normalisation (III-D): mean/std of the batch.

The bicubic resize is written as two small matrices, ``out = M_F @ crop @ M_T^T``, equal to
``torch.nn.functional.interpolate(mode='bicubic', align_corners=True)`` (cubic convolution, A = -0.75,
clamped borders) but ~10x cheaper per example in numpy, and batched with ``bmm`` in torch.

Pitch shift in the log-mel domain (Kuroyanagi & Komatsu 2022, Sec. 2.3): bin ``m`` of the output takes
the input's value at frequency ``f_m / a`` (linear interpolation on the mel axis), so a tone at ``f``
moves to ``a f``; bins whose source falls outside the filterbank get a fill value.

Example mixing (Wang et al. 2022, App. C): ``l x + (1 - l) x_other`` with ``l ~ Beta(5, 2)`` and
``x_other`` another example of the batch.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
import torch

from shards import norm as shards_norm

A_CUBIC = -0.75  # PyTorch's bicubic coefficient


# ---------------------------------------------------------------- normalisation

def normalize(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return ((x - np.float32(mean)) * np.float32(1.0 / max(std, 1e-8))).astype(np.float32, copy=False)


def standardize(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Per-example standardisation by its own mean/std (Wang et al. 2022, App. C): the one formula of
    :func:`shards.norm.standardize` (``x`` is one example)."""
    return shards_norm.standardize(x, eps, batched=False)


def batch_normalize(xs: list[np.ndarray], valid: np.ndarray | None = None, eps: float = 1e-8,
                    inplace: bool = False) -> list[np.ndarray]:
    """Post-normalisation (BYOL-A Sec. III-D): one mean/std over all views of the (valid) batch rows.

    The mean is a pairwise float32 sum, the variance that of the centred values (no cancellation);
    ``inplace=True`` overwrites ``xs`` (float32, writable) instead of allocating.
    """
    keep = None if valid is None or np.all(valid) else np.asarray(valid, dtype=bool)
    sel = xs if keep is None else [x[keep] for x in xs]
    n = sum(x.size for x in sel)
    if n == 0:
        return xs
    m = sum(float(x.sum(dtype=np.float32)) for x in sel) / n
    out = []
    for x in xs:
        y = x if inplace else x.astype(np.float32, copy=True)
        y -= np.float32(m)
        out.append(y)
    sq = 0.0
    for y in (out if keep is None else [y[keep] for y in out]):
        f = y.reshape(-1)
        sq += float(np.dot(f, f))
    inv = np.float32(1.0 / (math.sqrt(sq / n) + eps))
    for y in out:
        y *= inv
    return out


# ---------------------------------------------------------------- log-mixup-exp

def log_mixup_exp(x: np.ndarray, xk: np.ndarray, lam: float) -> np.ndarray:
    """``log((1 - lam) exp(x) + lam exp(xk))`` (BYOL-A Eq. 2), shifted by the max to stay finite."""
    if lam <= 0.0:
        return x.astype(np.float32, copy=True)
    if lam >= 1.0:
        return xk.astype(np.float32, copy=True)
    m = np.float32(max(float(x.max()), float(xk.max())))
    out = np.exp(x - m)
    out *= np.float32(1.0 - lam)
    out += np.float32(lam) * np.exp(xk - m)
    np.log(out, out=out)
    out += m
    return out.astype(np.float32, copy=False)


class MixupMemory:
    """FIFO memory of past inputs for log-mixup-exp (BYOL-A Sec. III-B: 2048 entries).

    Entries are kept in the linear domain, ``exp(x - max(x))`` with their ``max(x)``, so a mix costs
    one multiply-add and one log instead of two exps and a log; ``sample`` returns ``(k, x_k)`` in the
    log domain (for inspection), :func:`mixup` uses the linear form.

    Worker-local in melstream: each DataLoader worker keeps its own memory of the inputs it produced
    (the paper's single-process loader had one); with W workers every memory still holds a random
    subset of the data set, which is all the paper asks of it.
    """

    def __init__(self, size: int = 2048):
        self.size = int(size)
        self._lin: np.ndarray | None = None
        self._max: np.ndarray | None = None
        self._n = 0
        self._pos = 0

    def __len__(self) -> int:
        return self._n

    def push(self, x: np.ndarray, lin: tuple[np.ndarray, float] | None = None) -> None:
        """Store ``x``; ``lin = (exp(x - m), m)`` if already computed."""
        if self.size <= 0:
            return
        if self._lin is None or self._lin.shape[1:] != x.shape:
            self._lin = np.empty((self.size,) + x.shape, dtype=np.float32)
            self._max = np.zeros(self.size, dtype=np.float64)
            self._n = self._pos = 0
        e, m = lin if lin is not None else linear(x)
        self._lin[self._pos] = e
        self._max[self._pos] = m
        self._pos = (self._pos + 1) % self.size
        self._n = min(self._n + 1, self.size)

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, float] | None:
        """A random entry as ``(exp(x_k - m_k), m_k)``."""
        if self._n == 0:
            return None
        k = int(rng.integers(self._n))
        return self._lin[k], float(self._max[k])

    def sample(self, rng: np.random.Generator) -> tuple[int, np.ndarray] | None:
        if self._n == 0:
            return None
        k = int(rng.integers(self._n))
        return k, (np.log(self._lin[k]) + np.float32(self._max[k])).astype(np.float32)


class BlockMemory:
    """The same FIFO memory for batches: the last ``size`` pushed inputs, kept as references to the pushed
    ``[N, F, T]`` arrays of ``exp(x - max(x))`` (no copy; a block is dropped once all its rows have left).

    Entries are numbered in push order; :meth:`rows` returns ``(block array, row)`` for global numbers.
    """

    def __init__(self, size: int = 2048):
        self.size = int(size)
        self.total = 0  # inputs pushed so far
        self._blocks: list[tuple[int, np.ndarray, np.ndarray]] = []  # (first number, lin [n, F, T], max [n])

    def __len__(self) -> int:
        return min(self.total, max(self.size, 0))

    def push_many(self, lin: np.ndarray, maxes: np.ndarray) -> None:
        if self.size <= 0 or len(lin) == 0:
            return
        self._blocks.append((self.total, lin, np.asarray(maxes, dtype=np.float64)))
        self.total += len(lin)
        first = self.total - self.size
        while self._blocks and self._blocks[0][0] + len(self._blocks[0][1]) <= first:
            self._blocks.pop(0)

    def rows(self, numbers: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
        """For entry numbers (each among the last ``size`` pushed): ``(block arrays, block index, row, max)``."""
        if not self._blocks:
            z = np.zeros(np.shape(numbers), dtype=np.int64)
            return [], z, z, np.zeros(np.shape(numbers))
        starts = np.array([b[0] for b in self._blocks], dtype=np.int64)
        bi = np.maximum(np.searchsorted(starts, numbers, side="right") - 1, 0)
        row = numbers - starts[bi]
        maxes = np.concatenate([b[2] for b in self._blocks])
        return [b[1] for b in self._blocks], bi, row, maxes[numbers - starts[0]]


def linear(x: np.ndarray) -> tuple[np.ndarray, float]:
    """``(exp(x - m), m)`` with ``m = max(x)``: the linear domain, scaled to stay finite."""
    m = float(x.max())
    return np.exp(x - np.float32(m)), m


def mixup(x: np.ndarray, memory: MixupMemory, rng: np.random.Generator, alpha: float = 0.4,
          lin: tuple[np.ndarray, float] | None = None) -> tuple[np.ndarray, float]:
    """One log-mixup-exp draw (BYOL-A Eq. 2) against the memory: ``(mixed, lambda)``.

    ``lambda ~ U(0, alpha)``; it is 0 (no mixing) while the memory is empty.  ``lin`` is
    ``linear(x)`` when the caller already has it (two views of one input share it).
    """
    got = memory.draw(rng)
    lam = float(rng.uniform(0.0, alpha))
    if got is None or lam <= 0.0:
        return x.copy(), 0.0
    ex, mx = lin if lin is not None else linear(x)
    ek, mk = got
    m = max(mx, mk)
    out = ex * np.float32((1.0 - lam) * math.exp(mx - m))
    out += ek * np.float32(lam * math.exp(mk - m))
    np.log(out, out=out)
    out += np.float32(m)
    return out, lam


def gaussian_mix(x: np.ndarray, rng: np.random.Generator, alpha: float = 0.4, std: float = 0.4) -> tuple[np.ndarray, float]:
    """BYOL-A Table II Gaussian-noise block: log-mixup-exp against ``N(0, std)`` noise."""
    lam = float(rng.uniform(0.0, alpha))
    z = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(std)
    return log_mixup_exp(x, z, lam), lam


# ---------------------------------------------------------------- bicubic resize / random resize crop

def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Weights of taps -1, 0, +1, +2 for fractional offsets ``t`` in [0, 1): shape [..., 4]."""
    a = A_CUBIC

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


@lru_cache(maxsize=1024)
def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` matrix equal to 1-D bicubic resize with ``align_corners=True`` (PyTorch)."""
    if n_in < 1 or n_out < 1:
        raise ValueError("sizes must be positive")
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    src = scale * np.arange(n_out, dtype=np.float64)
    i0 = np.floor(src).astype(np.int64)
    w = _cubic_weights(src - i0)
    m = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.repeat(np.arange(n_out), 4)
    cols = np.clip(i0[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1).reshape(-1)
    np.add.at(m, (rows, cols), w.reshape(-1))
    m = m.astype(np.float32)
    m.setflags(write=False)
    return m


def rrc_params(n_freq: int, n_time: int, rng: np.random.Generator, virtual_crop: float = 1.5,
               time_scale: tuple[float, float] = (0.6, 1.5), freq_scale: tuple[float, float] = (0.6, 1.5)) -> tuple[int, int, int, int]:
    """Crop ``(i, j, h, w)`` on the virtual canvas ``[F, floor(virtual_crop T)]`` (BYOL-A Sec. III-C).

    ``h = floor(min(U(freq_scale), 1) F)``, ``w = floor(U(time_scale) T)``, the corner uniform over
    the places where the crop fits; all four from one draw of the generator.
    """
    u = rng.random(4)
    canvas_w = int(n_time * virtual_crop)
    h = int(min(freq_scale[0] + u[0] * (freq_scale[1] - freq_scale[0]), 1.0) * n_freq)
    w = int((time_scale[0] + u[1] * (time_scale[1] - time_scale[0])) * n_time)
    h = min(max(h, 1), n_freq)
    w = min(max(w, 1), canvas_w)
    i = min(int(u[2] * (n_freq - h + 1)), n_freq - h)
    j = min(int(u[3] * (canvas_w - w + 1)), canvas_w - w)
    return i, j, h, w


def rrc_params_batch(n_freq: int, n_time: int, rng: np.random.Generator, n: int, virtual_crop: float = 1.5,
                     time_scale: tuple[float, float] = (0.6, 1.5), freq_scale: tuple[float, float] = (0.6, 1.5)
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` crops at once: arrays ``(i, j, h, w)``, each draw the same function of 4 uniforms as :func:`rrc_params`."""
    u = rng.random((n, 4))
    canvas_w = int(n_time * virtual_crop)
    h = np.floor(np.minimum(freq_scale[0] + u[:, 0] * (freq_scale[1] - freq_scale[0]), 1.0) * n_freq).astype(np.int64)
    w = np.floor((time_scale[0] + u[:, 1] * (time_scale[1] - time_scale[0])) * n_time).astype(np.int64)
    h = np.clip(h, 1, n_freq)
    w = np.clip(w, 1, canvas_w)
    i = np.minimum(np.floor(u[:, 2] * (n_freq - h + 1)).astype(np.int64), n_freq - h)
    j = np.minimum(np.floor(u[:, 3] * (canvas_w - w + 1)).astype(np.int64), canvas_w - w)
    return i, j, h, w


def canvas_offset(n_time: int, virtual_crop: float = 1.5) -> int:
    """Column of the canvas where the input starts (centred)."""
    return (int(n_time * virtual_crop) - n_time) // 2


def random_resize_crop(x: np.ndarray, params: tuple[int, int, int, int], virtual_crop: float = 1.5) -> np.ndarray:
    """Apply the crop ``params`` from :func:`rrc_params` to ``x`` ``[F, T]`` -> ``[F, T]`` float32.

    The canvas outside the input is zero, so only the crop columns that overlap the input take part:
    ``out = M_F @ x[i:i+h, a:b] @ M_T[a':b']`` (rows of the time matrix for those columns).
    """
    n_freq, n_time = x.shape
    i, j, h, w = params
    x0 = canvas_offset(n_time, virtual_crop)
    a, b = max(j, x0), min(j + w, x0 + n_time)  # canvas columns holding the input
    if b <= a:
        return np.zeros((n_freq, n_time), dtype=np.float32)
    part = x[i:i + h, a - x0:b - x0]
    mt = bicubic_matrix_t(w, n_time)[a - j:b - j]
    if h == n_freq:  # min(U(0.6, 1.5), 1) = 1 in more than half the draws: the frequency resize is the identity
        return part @ mt
    mf = bicubic_matrix(h, n_freq)
    k = b - a
    if h * k * n_time + n_freq * h * n_time < n_freq * h * k + n_freq * k * n_time:  # cheaper order first
        return mf @ (part @ mt)
    return (mf @ part) @ mt


@lru_cache(maxsize=1024)
def bicubic_matrix_t(n_in: int, n_out: int) -> np.ndarray:
    """Contiguous transpose of :func:`bicubic_matrix` (``[n_in, n_out]``)."""
    m = np.ascontiguousarray(bicubic_matrix(n_in, n_out).T)
    m.setflags(write=False)
    return m


def bicubic_matrices_torch(start: torch.Tensor, length: torch.Tensor, offset: int, n_in: int, n_out: int) -> torch.Tensor:
    """Batched ``[B, n_out, n_in]``: bicubic resize of canvas ``[start, start + length)`` to ``n_out``,
    where canvas index ``c`` is input index ``c - offset`` (canvas outside the input is zero)."""
    dev = start.device
    start = start.to(torch.float64)
    length = length.to(torch.float64)
    o = torch.arange(n_out, device=dev, dtype=torch.float64)
    scale = torch.where(length > 1, (length - 1) / max(n_out - 1, 1), torch.zeros_like(length))
    src = scale[:, None] * o[None, :]  # [B, n_out], crop-local
    i0 = torch.floor(src)
    t = src - i0
    a = A_CUBIC
    near = lambda d: ((a + 2) * d - (a + 3)) * d * d + 1  # noqa: E731
    far = lambda d: ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # noqa: E731
    w = torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], dim=-1)  # [B, n_out, 4]
    taps = i0[..., None] + torch.arange(-1, 3, device=dev, dtype=torch.float64)
    taps = torch.minimum(torch.clamp(taps, min=0), (length - 1)[:, None, None])  # clamp inside the crop
    idx = (taps + start[:, None, None] - offset).long()  # input index
    inside = (idx >= 0) & (idx < n_in)
    w = torch.where(inside, w, torch.zeros_like(w))
    idx = torch.where(inside, idx, torch.zeros_like(idx))
    m = torch.zeros(start.shape[0], n_out, n_in, device=dev, dtype=torch.float64)
    m.scatter_add_(2, idx, w)
    return m.to(torch.float32)


# ---------------------------------------------------------------- pitch shift in the mel domain

def _hz_to_mel(f: np.ndarray, scale: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    # slaney (torchaudio): linear below 1 kHz, log above
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    mel = f / f_sp
    min_log_mel = min_log_hz / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep, mel)


def _mel_to_hz(m: np.ndarray, scale: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_centers(frontend: Mapping[str, Any]) -> np.ndarray:
    """Centre frequencies (Hz) of the triangular mel filters of a frontend (torchaudio's layout)."""
    return _centres(str(frontend.get("mel_scale", "htk")), int(frontend["n_mels"]),
                    float(frontend.get("f_min", 0.0)), float(frontend.get("f_max", 8000.0))).copy()


@lru_cache(maxsize=16)
def _centres(scale: str, n: int, f_min: float, f_max: float) -> np.ndarray:
    pts = np.linspace(_hz_to_mel(f_min, scale), _hz_to_mel(f_max, scale), n + 2)
    return _mel_to_hz(pts[1:-1], scale)


def pitch_shift_matrix(frontend: Mapping[str, Any], factor: float) -> tuple[np.ndarray, np.ndarray]:
    """``(W [F, F], covered [F] bool)``: ``W @ x`` shifts a log-mel ``x`` by ``factor`` in frequency."""
    scale = str(frontend.get("mel_scale", "htk"))
    centres = _centres(scale, int(frontend["n_mels"]), float(frontend.get("f_min", 0.0)), float(frontend.get("f_max", 8000.0)))
    mels = _hz_to_mel(centres, scale)
    n = centres.size
    src_mel = _hz_to_mel(centres / float(factor), scale)
    pos = (src_mel - mels[0]) / (mels[1] - mels[0]) if n > 1 else np.zeros(n)
    covered = (pos >= -1e-9) & (pos <= n - 1 + 1e-9)
    pos = np.clip(pos, 0, n - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), max(n - 2, 0))
    t = pos - lo
    w = np.zeros((n, n), dtype=np.float64)
    rows = np.arange(n)
    w[rows, lo] += 1 - t
    if n > 1:
        w[rows, lo + 1] += t
    w[~covered] = 0.0
    return w.astype(np.float32), covered


def pitch_shift(x: np.ndarray, frontend: Mapping[str, Any], factor: float, fill: str | float = "min") -> np.ndarray:
    """Pitch-shift a log-mel ``[F, T]`` by ``factor`` (tone at f -> a f); uncovered bins get ``fill``."""
    w, covered = pitch_shift_matrix(frontend, factor)
    out = w @ x
    if not covered.all():
        fv = float(x.min()) if fill == "min" else float(fill)
        out[~covered] = fv
    return out.astype(np.float32, copy=False)


# ---------------------------------------------------------------- example mixing

def mix_examples(x: np.ndarray, rng: np.random.Generator, beta: tuple[float, float] = (5.0, 2.0),
                 valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``l x + (1 - l) x[partner]`` per row, ``l ~ Beta(*beta)``, partner another (valid) row.

    Returns ``(mixed, lam [B], partner [B])``.  With fewer than two valid rows nothing is mixed.
    """
    b = x.shape[0]
    rows = np.arange(b) if valid is None else np.flatnonzero(valid)
    lam = np.ones(b, dtype=np.float32)
    partner = np.arange(b)
    if rows.size < 2:
        return x, lam, partner
    shift = rng.integers(1, rows.size, size=rows.size)
    partner[rows] = rows[(np.arange(rows.size) + shift) % rows.size]
    lam[rows] = rng.beta(beta[0], beta[1], size=rows.size).astype(np.float32)
    shape = (b,) + (1,) * (x.ndim - 1)
    lv = lam.reshape(shape)
    return (lv * x + (1 - lv) * x[partner]).astype(np.float32), lam, partner
