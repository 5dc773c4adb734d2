"""Frozen models, windowing, and cached embeddings.

A :class:`FrozenModel` turns a batch of log-mel windows ``[B, 1, F, T]`` into named embedding kinds:
``clip`` (``encoder(x)``), ``block<i>`` (mean-pooled ``blocks(x)[i]``, the layer-wise probing of
DeLoRes, Ghosh et al. 2022 Sec. VII-D / Table X) and, for the spectrogram baseline, ``proj`` (the
128-d Gaussian random projection used for kNN, Tagliasacchi et al. 2019 Sec. 4).

Windows (Tagliasacchi et al. 2019 Sec. 4): a centre crop of ``T`` frames, or sliding windows of ``T``
frames with hop ``T/2``; clips shorter than ``T`` are padded at head and tail with silence
(``log(eps)``; BYOL-A Sec. IV-A1 pads with zeros in the waveform).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from models import build_encoder, memory_format
from models.export import load_run as load_encoder
from shards.frontend import FrontendConfig
from shards.norm import apply_input_norm
from shards.progress import progress_bar, show_status
from shards.rundir import META, WEIGHTS
from shards.writer import file_digest

from .cache import EmbeddingWriter, complete_kinds, discard_embeddings, discard_mels, emb_dir, iter_mels, read_embeddings
from .cache_check import CacheCorrupt, entry_lock
from .tasks.base import TaskData, Window

log = logging.getLogger("melstream.eval")


def pad_value(fe: FrontendConfig) -> float:
    return float(np.log(fe.eps))


def window_starts(t: int, window: Window) -> list[int]:
    """First frames of the windows of a ``t``-frame clip (``[]``: shorter than a window, padded instead)."""
    n = window.frames
    if t < n:
        return []
    if window.mode == "crop":
        return [(t - n) // 2]
    hop = max(1, n // 2)
    starts = list(range(0, t - n + 1, hop))
    if starts[-1] != t - n:
        starts.append(t - n)
    if len(starts) > window.max_windows:
        idx = np.unique(np.linspace(0, len(starts) - 1, window.max_windows).round().astype(int))
        starts = [starts[i] for i in idx]
    return starts


def pad_window(mel: np.ndarray, n: int, pad: float) -> np.ndarray:
    """A clip shorter than ``n`` frames, centred in ``n`` frames of ``pad`` -> float32 ``[F, n]``."""
    f, t = mel.shape
    out = np.full((f, n), pad, dtype=np.float32)
    a = (n - t) // 2
    out[:, a:a + t] = mel
    return out


def make_windows(mel: np.ndarray, window: Window, pad: float) -> np.ndarray:
    """``[F, T]`` -> ``[W, F, window.frames]`` (centre crop, or sliding windows with hop frames // 2)."""
    n = window.frames
    starts = window_starts(mel.shape[1], window)
    if not starts:
        return pad_window(mel, n, pad)[None]
    return np.stack([mel[:, s:s + n] for s in starts]).astype(np.float32, copy=False)


def _unwrap(m: torch.nn.Module) -> torch.nn.Module:
    while hasattr(m, "module") and isinstance(getattr(m, "module"), torch.nn.Module):
        m = m.module
    return m


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """Embeddings in IEEE float32 on every device: cuDNN convolutions (and matmuls) without TF32.

    torch lets cuDNN use TF32 (10-bit mantissa, rounding error ~5e-4 per input) for float32
    convolutions by default on Ampere and newer GPUs; the embedding cache is keyed by model, not
    device, so CPU and GPU embeddings must agree (issue 13: to 1e-3).  Restores the flags."""
    cudnn, mm = torch.backends.cudnn, torch.backends.cuda.matmul
    old = (cudnn.allow_tf32, mm.allow_tf32)
    cudnn.allow_tf32 = mm.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, mm.allow_tf32 = old


def normalise(x: torch.Tensor, input_norm: Optional[dict]) -> torch.Tensor:
    return apply_input_norm(x, input_norm)


def pool_block(h: torch.Tensor) -> torch.Tensor:
    """Mean over every axis but batch and channel (``[B, C, F, T]`` -> ``[B, C]``; ``[B, N, C]`` -> ``[B, C]``)."""
    if h.dim() == 4:
        return h.mean(dim=(2, 3))
    if h.dim() == 3:
        return h.mean(dim=1)
    return h.reshape(h.shape[0], -1)


class FrozenModel:
    """Base: ``name`` (report row), ``frontend``, ``model_hash()``, ``embed(x, blocks)``."""

    name: str = ""
    frontend: FrontendConfig
    knn_kind: str = "clip"
    min_frames: int = 1

    def model_hash(self) -> str:
        raise NotImplementedError

    def embed(self, x: torch.Tensor, blocks: bool = False) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "hash": self.model_hash(), "frontend": self.frontend.to_dict()}


class EncoderModel(FrozenModel):
    """An exported (or randomly initialised) encoder, frozen, in eval mode."""

    def __init__(self, encoder: torch.nn.Module, name: str, frontend: FrontendConfig, input_norm: Optional[dict],
                 hash_: str, info: Optional[dict] = None, device: str = "cpu"):
        self.encoder = encoder.to(device).eval()
        memory_format.apply(self.encoder, "auto")  # channels_last for conv encoders: same numbers, faster
        self.name, self.frontend, self.input_norm, self._hash = name, frontend, input_norm, hash_
        self.info = dict(info or {})
        self.device = device
        self.min_frames = int(getattr(_unwrap(encoder), "min_frames", 1))

    def model_hash(self) -> str:
        return self._hash

    @torch.inference_mode()
    def embed(self, x: torch.Tensor, blocks: bool = False) -> dict[str, torch.Tensor]:
        enc = _unwrap(self.encoder)
        x = normalise(x.to(self.device), self.input_norm)
        with full_fp32():
            out = {"clip": enc(x).float()}
            if blocks:
                for i, h in enumerate(enc.blocks(x)):
                    out[f"block{i}"] = pool_block(h).float()
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "input_norm": self.input_norm, **self.info}


def file_hash(*paths: str) -> str:
    return file_digest(list(paths))[:16]


def load_run(run_dir: str, device: str = "cpu", name: Optional[str] = None) -> EncoderModel:
    """An exported run dir (anything with ``encoder.json``) as a frozen model."""
    enc, meta = load_encoder(run_dir, device=device)
    fe = FrontendConfig.from_dict(meta["frontend"])
    info = {"kind": "run", "run_dir": os.path.abspath(run_dir), "encoder": meta["encoder"], "kwargs": meta["kwargs"],
            "method": meta.get("method"), "step": meta.get("step")}
    return EncoderModel(enc, name or os.path.basename(os.path.normpath(run_dir)), fe, meta.get("input_norm"),
                        file_hash(os.path.join(run_dir, WEIGHTS), os.path.join(run_dir, META)), info, device)


def build_random_encoder(encoder: str, kwargs: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_encoder(encoder, **kwargs)


def untrained_model(encoder: str, kwargs: dict, frontend: FrontendConfig, input_norm: Optional[dict],
                    seed: int = 0, device: str = "cpu", name: Optional[str] = None) -> EncoderModel:
    """Tagliasacchi et al. 2019 Sec. 4 ``Untrained``: the same encoder with random weights."""
    enc = build_random_encoder(encoder, kwargs, seed)
    blob = json.dumps({"untrained": encoder, "kwargs": kwargs, "seed": seed, "input_norm": input_norm}, sort_keys=True)
    h = "untrained-" + hashlib.sha256(blob.encode()).hexdigest()[:12]
    return EncoderModel(enc, name or f"untrained:{encoder}", frontend, input_norm, h,
                        {"kind": "untrained", "encoder": encoder, "kwargs": kwargs, "seed": seed}, device)


class SpectrogramModel(FrozenModel):
    """Tagliasacchi et al. 2019 Sec. 4 ``Spectrogram``: the flattened log-mel window itself.

    ``clip``: flattened window (windows longer than ``max_frames`` are average-pooled in time to
    ``max_frames`` frames first, so long crops stay tractable); ``proj``: a fixed Gaussian random
    projection of it to ``proj_dim`` (128) dimensions, the kNN features of Sec. 4 / Table 3.
    """

    name = "spectrogram"
    knn_kind = "proj"

    def __init__(self, frontend: FrontendConfig, proj_dim: int = 128, max_frames: int = 96, seed: int = 0):
        self.frontend, self.proj_dim, self.max_frames, self.seed = frontend, proj_dim, max_frames, seed
        self._proj: dict[int, torch.Tensor] = {}

    def model_hash(self) -> str:
        return f"spectrogram-{self.frontend.hash()}-p{self.proj_dim}-m{self.max_frames}-s{self.seed}"

    def _matrix(self, d: int) -> torch.Tensor:
        if d not in self._proj:
            g = torch.Generator().manual_seed(self.seed)
            self._proj[d] = torch.randn(d, self.proj_dim, generator=g) / math.sqrt(self.proj_dim)
        return self._proj[d]

    @torch.inference_mode()
    def embed(self, x: torch.Tensor, blocks: bool = False) -> dict[str, torch.Tensor]:
        x = x.float().cpu()
        if x.shape[-1] > self.max_frames:
            x = torch.nn.functional.adaptive_avg_pool2d(x, (x.shape[-2], self.max_frames))
        flat = x.reshape(x.shape[0], -1)
        return {"clip": flat, "proj": flat @ self._matrix(flat.shape[1])}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "kind": "spectrogram", "proj_dim": self.proj_dim}


@dataclass
class TaskEmbeddings:
    """Per-clip window embeddings of one task for one model, in ``td.clips`` order (missing clips dropped)."""

    keys: list[str]
    kinds: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def block_kinds(self) -> list[str]:
        return sorted((k for k in self.kinds if k.startswith("block")), key=lambda k: int(k[5:]))


def compute_embeddings(model: FrozenModel, td: TaskData, mel_dirs: list[str], window: Window, out_dir: str,
                       blocks: bool = False, batch_size: int = 64, progress: bool = True) -> None:
    """Embed every clip of ``td`` (windows batched across clips) and write one cache dir per kind.  The bar
    counts clips and moves after every batch of ``batch_size`` windows (with the windows embedded so far)."""
    pad = pad_value(model.frontend)
    if window.frames < model.min_frames:
        raise ValueError(f"{model.name}: windows of {window.frames} frames are shorter than the encoder's minimum "
                         f"{model.min_frames}; pass --window-frames")
    by_key = {c.key: c for c in td.clips}
    writers: dict[str, EmbeddingWriter] = {}
    pending: list[tuple[str, int]] = []
    buf: list[np.ndarray] = []
    bar = progress_bar(len(by_key), f"embed {td.name} [{model.name}]", "clip", enabled=progress, leave=False)
    n_windows = 0

    def flush() -> None:
        nonlocal n_windows
        if not buf:
            return
        x = torch.from_numpy(np.concatenate(buf))[:, None]
        outs = {}
        ends = np.cumsum([n for _, n in pending])  # window count after each pending clip
        shown = 0
        for i in range(0, x.shape[0], batch_size):
            for k, v in model.embed(x[i:i + batch_size], blocks=blocks).items():
                outs.setdefault(k, []).append(v.cpu().numpy().astype(np.float32))
            n_windows += min(batch_size, x.shape[0] - i)
            done = int(np.searchsorted(ends, i + batch_size, side="right"))  # clips whose windows are all embedded
            bar.update(done - shown)
            shown = done
            show_status(bar, f"{n_windows} windows")
        outs = {k: np.concatenate(v) for k, v in outs.items()}
        pos = 0
        for key, n in pending:
            c = by_key[key]
            meta = {"labels": list(c.labels), "split": c.split, "fold": c.fold}
            for k, arr in outs.items():
                if k not in writers:
                    writers[k] = EmbeddingWriter(os.path.join(out_dir, k), td.name, k)
                writers[k].add(key, arr[pos:pos + n], meta)
            pos += n
        pending.clear()
        buf.clear()

    try:
        n_buf = 0
        for key, mel in iter_mels(mel_dirs, set(by_key)):
            w = make_windows(mel, window, pad)
            buf.append(w)
            pending.append((key, w.shape[0]))
            n_buf += w.shape[0]
            if n_buf >= batch_size * 4:
                flush()
                n_buf = 0
        flush()
    except BaseException:
        for wr in writers.values():
            wr.abort()
        raise
    finally:
        bar.close()
    extra = {"model": model.describe(), "task": td.name, "protocol": td.protocol, "window": window.__dict__,
             "frontend": model.frontend.to_dict(), "frontend_hash": model.frontend.hash()}
    for wr in writers.values():
        wr.close(extra)


def _compute_with_mel_retry(model: FrozenModel, td: TaskData, mel_dirs_fn, window: Window, d: str, cache_dir: str,
                            blocks: bool, batch_size: int, progress: bool) -> None:
    """:func:`compute_embeddings`; a log-mel cache shard that fails to decode is discarded and rebuilt once
    (shards outside the cache, such as the demo's, are only named)."""
    mel_root = os.path.join(os.path.abspath(cache_dir), "mels") + os.sep
    for attempt in range(2):
        try:
            compute_embeddings(model, td, mel_dirs_fn(), window, d, blocks=blocks, batch_size=batch_size,
                               progress=progress)
            return
        except CacheCorrupt as e:
            if attempt or not os.path.abspath(e.path).startswith(mel_root):
                raise
            log.warning("log-mel cache: %s; discarded, rebuilding it", e)
            split_dir = os.path.dirname(os.path.abspath(e.path))
            with entry_lock(cache_dir, os.path.dirname(split_dir), "log-mel cache entry"):
                discard_mels(split_dir, [e])


def get_embeddings(model: FrozenModel, td: TaskData, mel_dirs_fn, window: Window, cache_dir: str,
                   blocks: bool = False, batch_size: int = 64, progress: bool = True,
                   kinds: Optional[list[str]] = None) -> TaskEmbeddings:
    """Cached embeddings of ``td`` for ``model`` (computed on a miss); ``mel_dirs_fn()`` gives the log-mels.

    The entry is checked against its manifests as it is read; a file that does not match is named in a
    warning and the entry is rebuilt.  One process at a time builds or reads an entry; others wait."""
    d = emb_dir(cache_dir, model.model_hash(), td, window.embed_slug())
    with entry_lock(cache_dir, d, "embedding cache entry"):
        for attempt in range(2):
            have = complete_kinds(d)
            if "clip" not in have or (blocks and not any(k.startswith("block") for k in have)):
                discard_embeddings(d)  # kinds of an older or interrupted run
                log.info("embedding %s [%s] into %s", td.name, model.name, d)
                _compute_with_mel_retry(model, td, mel_dirs_fn, window, d, cache_dir, blocks, batch_size, progress)
                have = complete_kinds(d)
            want = [k for k in have if kinds is None or k in kinds or (blocks and k.startswith("block"))]
            try:
                loaded = {k: read_embeddings(os.path.join(d, k)) for k in want}
                break
            except CacheCorrupt as e:
                if attempt:
                    raise
                log.warning("embedding cache: %s; discarded the entry, rebuilding it", e)
                discard_embeddings(d)
    keys = [c.key for c in td.clips if all(c.key in loaded[k] for k in want)]
    if len(keys) < len(td.clips):
        log.warning("%s: %d of %d clips have no embedding (undecodable audio) and are left out",
                    td.name, len(td.clips) - len(keys), len(td.clips))
    return TaskEmbeddings(keys, {k: [loaded[k][key] for key in keys] for k in want})
