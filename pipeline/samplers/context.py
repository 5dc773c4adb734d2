"""``context``: Audio2Vec slices (Tagliasacchi et al. 2019, Sec. 3 "Audio2Vec" and Sec. 4 "Models").

A centre slice ``X_(0) = X_i`` and ``P`` slices each side at ``X_(p) = X_{i + p (N + G)}``: non-overlapping
N-frame slices with a gap of G frames between neighbours (so the model cannot exploit the leakage
between adjacent STFT frames).  Paper defaults: P = 2, G = 2, N = 96.  CBoW reconstructs the centre from
the context, skip-gram the context from the centre: both use these keys.  A clip shorter than the
span ``(2P + 1) N + 2P G`` is centred and zero-padded.
"""
from __future__ import annotations

import numpy as np

from .base import SAMPLERS, Sampler, take


@SAMPLERS.register("context")
class Context(Sampler):
    """Batch keys: ``context`` ``[B, 2P, 1, F, N]`` (order -P..-1, +1..+P), ``center`` ``[B, 1, F, N]``."""

    keys = ("context", "center")

    def __init__(self, n_frames: int = 96, n_side: int = 2, gap: int = 2, normalize: bool = False):
        super().__init__(normalize)
        self.n_frames = int(n_frames)
        self.n_side = int(n_side)
        self.gap = int(gap)
        if self.n_side < 1 or self.gap < 0:
            raise ValueError("context needs n_side >= 1 and gap >= 0")

    @property
    def span(self) -> int:
        return (2 * self.n_side + 1) * self.n_frames + 2 * self.n_side * self.gap

    @property
    def min_frames(self) -> int:
        return self.span

    def offsets(self) -> list[int]:
        """Start of each context slice relative to the centre slice, in output order."""
        step = self.n_frames + self.gap
        return [p * step for p in list(range(-self.n_side, 0)) + list(range(1, self.n_side + 1))]

    def draw(self, total: int, rng: np.random.Generator) -> int:
        """Start ``i`` of the centre slice."""
        side = self.n_side * (self.n_frames + self.gap)
        lo, hi = side, total - self.n_frames - side
        if hi < lo:
            return (total - self.n_frames) // 2
        return int(rng.integers(lo, hi + 1))

    def __call__(self, mel, meta, rng):
        i = self.draw(int(mel.shape[1]), rng)
        n = self.n_frames
        first = i - self.n_side * (n + self.gap)
        block = take(mel, first, self.span)  # decode the span once, then slice it
        rel = [o - first + i for o in self.offsets()]
        ctx = np.stack([block[:, r:r + n] for r in rel])[:, None]
        centre = block[:, i - first:i - first + n]
        return {"context": self.norm(ctx), "center": self.norm(np.ascontiguousarray(centre))[None]}
