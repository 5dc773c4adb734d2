"""A task's clip windows cut on demand from the log-mel shards on disk (fine-tuning, online probe).

Fine-tuning draws one random window of a training clip per step and scores every window of the
validation and test clips each epoch, so it needs random access to any window of any clip.  Holding
the windows as arrays costs twice the float32 size of the task's audio (sliding windows overlap by
half): about 20 GB for FSD50K, 60 GB for NSynth.  :class:`ClipWindows` keeps instead, per clip, where
its two tar members lie in its shard (six integers, from :func:`shards.iter_tar_index`) and cuts a
window when asked: two ``os.pread`` calls, then ``f16chunks`` samples decompress just the one or two
chunks the window lies in (:func:`shards.decode_mel_frames`), other codecs the whole member.  Nothing
decoded is kept, so memory stays flat however long training runs; the page cache does the caching,
and at most :data:`MAX_OPEN` shard files are open at once.

Windows are those of :func:`eval.embed.make_windows` (same starts, same padding), bit for bit.
Every sample is decoded and checked once when the store is built, so a corrupt one fails there with
its key, not in the middle of training.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Iterator, Sequence

import numpy as np

import shards
from shards.format import JSON_EXT, MEL_EXT

from .embed import make_windows, pad_window, window_starts
from .tasks.base import Window

MAX_OPEN = 64


class ClipWindows:
    """Windows of the clips ``keys`` found in the mel shard dirs ``dirs`` (keys absent there are dropped)."""

    def __init__(self, dirs: Sequence[str], keys: Sequence[str], window: Window, pad: float):
        self.spec, self.pad = window, float(pad)
        self._paths: list[str] = []
        self._fds: OrderedDict[int, int] = OrderedDict()
        want = set(keys)
        found: dict[str, tuple[int, ...]] = {}
        for d in dirs:
            for path in shards.shard_paths(d):
                sid = len(self._paths)
                self._paths.append(path)
                for key, where in shards.iter_tar_index(path):
                    if key not in want or key in found:
                        continue
                    if JSON_EXT not in where or MEL_EXT not in where:
                        raise ValueError(f"{path}: sample {key} lacks a member ({sorted(where)})")
                    row = (sid, *where[JSON_EXT], *where[MEL_EXT])
                    try:
                        mel, _ = shards.decode_members(key, self._members(row))  # shape, codec, finiteness
                    except ValueError as e:
                        raise ValueError(f"{path}: sample {key}: {e}") from None
                    found[key] = (*row, mel.shape[1])
        self.keys = [k for k in keys if k in found]
        self._rows = np.array([found[k] for k in self.keys], dtype=np.int64).reshape(len(self.keys), 6)
        self._starts = [window_starts(int(r[5]), window) for r in self._rows]
        self.n_windows = np.array([max(1, len(s)) for s in self._starts], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.keys)

    def _fd(self, sid: int) -> int:
        fd = self._fds.pop(sid, None)
        if fd is None:
            fd = os.open(self._paths[sid], os.O_RDONLY)
            while len(self._fds) >= MAX_OPEN:
                os.close(self._fds.popitem(last=False)[1])
        self._fds[sid] = fd  # most recently used last
        return fd

    def _read(self, sid: int, offset: int, size: int) -> bytes:
        data = os.pread(self._fd(sid), size, offset)
        if len(data) != size:
            raise ValueError(f"{self._paths[sid]}: truncated (wanted {size} bytes at {offset})")
        return data

    def _members(self, row: Sequence[int]) -> dict[str, bytes]:
        sid, jo, js, mo, ms = (int(v) for v in row[:5])
        return {JSON_EXT: self._read(sid, jo, js), MEL_EXT: self._read(sid, mo, ms)}

    def window(self, i: int, k: int) -> np.ndarray:
        """Window ``k`` of clip ``i``: float32 ``[F, spec.frames]``; ``f16chunks`` decompresses only the
        chunks it lies in (one random window per clip and step is what fine-tuning draws)."""
        m = self._members(self._rows[i])
        meta = json.loads(m[JSON_EXT])
        starts, n = self._starts[i], self.spec.frames
        if not starts:
            return pad_window(shards.decode_mel(m[MEL_EXT], meta), n, self.pad)
        s = starts[k]
        return shards.decode_mel_frames(m[MEL_EXT], meta, s, s + n)

    def clip(self, i: int) -> np.ndarray:
        """Every window of clip ``i``: float32 ``[W, F, spec.frames]``; the clip is decoded once."""
        m = self._members(self._rows[i])
        return make_windows(shards.decode_mel(m[MEL_EXT], json.loads(m[JSON_EXT])), self.spec, self.pad)

    def batches(self, idx: Sequence[int], batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All windows of clips ``idx`` in batches of up to ``batch``: ``(x [b, F, n], position in idx)``."""
        xs: list[np.ndarray] = []
        owner: list[int] = []
        for pos, i in enumerate(idx):
            for w in self.clip(int(i)):
                xs.append(w)
                owner.append(pos)
                if len(xs) == batch:
                    yield np.stack(xs), np.asarray(owner)
                    xs, owner = [], []
        if xs:
            yield np.stack(xs), np.asarray(owner)

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
