"""``triplet``: TripletLoss examples (Tagliasacchi et al. 2019, Sec. 4 "Models", after Jansen et al. 2018).

Anchor and positive are slices of the same clip (temporal neighbours: by default anywhere in the
clip, as the paper takes "a slice from the same original sample"; ``max_shift`` restricts the
positive to within that many frames of the anchor); the negative is a slice of a different clip.

Negatives come from a small worker-local pool of slices of recently seen clips, each stored with the
identity of its recording, and a negative is never drawn from the anchor's recording: the identity is
the sample's ``source_id`` (the file, YouTube ID or FSD50K clip it came from, so clips cut from one
long file with ``--segment-seconds`` are never each other's negatives), else its key.  The very first clip a
worker sees has no other clip to draw from: it is held back until the next clip arrives (and, at
the end of a finite evaluation stream with a single clip, gets an all-zero negative with a warning).
"""
from __future__ import annotations

import logging

import numpy as np

from .base import SAMPLERS, Sampler, random_start, take

log = logging.getLogger("melstream.pipeline")


@SAMPLERS.register("triplet")
class Triplet(Sampler):
    """Batch keys: ``anchor``, ``positive``, ``negative`` ``[B, 1, F, N]``."""

    keys = ("anchor", "positive", "negative")

    stateful = True  # negatives come from a pool of the worker's earlier clips

    def __init__(self, n_frames: int = 96, pool_size: int = 64, max_shift: int | None = None, normalize: bool = False):
        super().__init__(normalize)
        self.n_frames = int(n_frames)
        self.pool_size = int(pool_size)
        self.max_shift = None if max_shift is None else int(max_shift)
        if self.pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        self._pool: list[tuple[str, np.ndarray]] = []
        self._pos = 0
        self._pending: list[tuple[str, dict]] = []

    def _push(self, key: str, sl: np.ndarray) -> None:
        if len(self._pool) < self.pool_size:
            self._pool.append((key, sl))
        else:
            self._pool[self._pos] = (key, sl)
            self._pos = (self._pos + 1) % self.pool_size

    def _negative(self, key: str, rng: np.random.Generator) -> tuple[str, np.ndarray] | None:
        n = len(self._pool)
        if n == 0:
            return None
        for _ in range(4):
            k, sl = self._pool[int(rng.integers(n))]
            if k != key:
                return k, sl
        others = [e for e in self._pool if e[0] != key]
        return others[int(rng.integers(len(others)))] if others else None

    def _positions(self, total: int, rng: np.random.Generator) -> tuple[int, int]:
        n = self.n_frames
        a = random_start(total, n, rng)
        if total <= n:
            return a, a
        if self.max_shift is None:
            return a, int(rng.integers(0, total - n + 1))
        lo, hi = max(0, a - self.max_shift), min(total - n, a + self.max_shift)
        return a, int(rng.integers(lo, hi + 1))

    def __call__(self, mel, meta, rng):
        key = str((meta or {}).get("key") or getattr(mel, "key", None) or id(mel))
        ident = str((meta or {}).get("source_id") or key)
        total = int(mel.shape[1])
        a, p = self._positions(total, rng)
        ex = {"anchor": self.norm(take(mel, a, self.n_frames))[None],
              "positive": self.norm(take(mel, p, self.n_frames))[None], "__key__": key}
        self._push(ident, self.norm(self.crop(mel, rng))[None])
        out = []
        still = []
        for k, e in self._pending:  # clips held back for want of another clip
            neg = self._negative(k, rng)
            if neg is None:
                still.append((k, e))
            else:
                e["negative"] = neg[1].copy()
                out.append(e)
        self._pending = still
        neg = self._negative(ident, rng)
        if neg is None:
            self._pending.append((ident, ex))
        else:
            ex["negative"] = neg[1].copy()
            out.append(ex)
        return out

    def flush(self, rng):
        out = []
        for k, e in self._pending:
            neg = self._negative(k, rng)
            if neg is None:
                log.warning("triplet: no other clip to draw a negative for %s from; using an all-zero negative", k)
                e["negative"] = np.zeros_like(e["anchor"])
            else:
                e["negative"] = neg[1].copy()
            out.append(e)
        self._pending = []
        return out
