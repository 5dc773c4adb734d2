"""``crop``: one random crop of N frames per clip (+ multi-hot labels for the ``supervised`` objective).

Defaults: N = 96 frames (975 ms at a 10 ms hop; Tagliasacchi et al. 2019 Sec. 4 "N = 96", and the
T = 96 segment of Niizumi et al. 2021 Sec. IV-A1).  Clips shorter than N are zero-padded at head and
tail (Niizumi et al. 2021 Sec. IV-A1).
"""
from __future__ import annotations

import numpy as np

from .base import SAMPLERS, Sampler


@SAMPLERS.register("crop")
class Crop(Sampler):
    """Batch keys: ``x`` ``[B, 1, F, N]``; ``labels`` ``[B, V]`` float multi-hot when the manifests
    have a label vocabulary (labels outside it are ignored)."""

    keys = ("x", "labels")

    def __init__(self, n_frames: int = 96, normalize: bool = False, labels: bool = True):
        super().__init__(normalize)
        self.n_frames = int(n_frames)
        self.labels = bool(labels)
        self._index: dict[str, int] = {}
        self._cache: dict[tuple, np.ndarray] = {}

    def bind(self, facts) -> None:
        super().bind(facts)
        self._index = {v: i for i, v in enumerate(self.vocabulary)}
        self._cache = {}

    def multi_hot(self, meta: dict) -> np.ndarray:
        labels = tuple((meta or {}).get("labels") or ())
        y = self._cache.get(labels)
        if y is None:
            y = np.zeros(len(self._index), dtype=np.float32)
            for lab in labels:
                i = self._index.get(str(lab))
                if i is not None:
                    y[i] = 1.0
            if len(self._cache) < 65536:
                self._cache[labels] = y
        return y.copy()

    def __call__(self, mel, meta, rng):
        ex = {"x": self.norm(self.crop(mel, rng))[None]}
        if self.labels and self._index:
            ex["labels"] = self.multi_hot(meta)
        return ex
