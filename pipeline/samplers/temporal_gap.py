"""``temporal_gap``: TemporalGap pairs (Tagliasacchi et al. 2019, Sec. 3 "Temporal gap").

The gap ``D ~ U{0, ..., Nmax - N}`` (frames), then two slices ``X_i``, ``X_j`` with ``|i - j| = D``
placed uniformly in the clip, in random order (the paper imposes no temporal order), and the target
``d = D / (Nmax - N)`` in [0, 1].  ``Nmax`` is the clip's length in frames, N = 96.  A clip no longer
than N gives ``D = 0``, ``d = 0`` (the slice is zero-padded).
"""
from __future__ import annotations

import numpy as np

from .base import SAMPLERS, Sampler, take


@SAMPLERS.register("temporal_gap")
class TemporalGap(Sampler):
    """Batch keys: ``x1``, ``x2`` ``[B, 1, F, N]``, ``target`` ``[B]`` float (d = D / (Nmax - N))."""

    keys = ("x1", "x2", "target")

    def __init__(self, n_frames: int = 96, normalize: bool = False):
        super().__init__(normalize)
        self.n_frames = int(n_frames)

    def draw(self, total: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """``(first_start, second_start, D, range)`` for a clip of ``total`` frames."""
        n = self.n_frames
        span = max(total - n, 0)
        if span == 0:
            s = -((n - total) // 2)
            return s, s, 0, 0
        gap = int(rng.integers(0, span + 1))
        i = int(rng.integers(0, span - gap + 1))
        j = i + gap
        if rng.random() < 0.5:
            i, j = j, i
        return i, j, gap, span

    def __call__(self, mel, meta, rng):
        i, j, gap, span = self.draw(int(mel.shape[1]), rng)
        n = self.n_frames
        return {"x1": self.norm(take(mel, i, n))[None], "x2": self.norm(take(mel, j, n))[None],
                "target": np.float32(gap / span if span else 0.0)}
