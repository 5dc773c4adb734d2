"""``clip_pair``: COLA's clip-level strategy (Kuroyanagi & Komatsu 2022, Sec. 2.1).

Two independent random crops of the same clip form the positive pair; the other clips of the
batch are the negatives (the objective builds them in-batch, gathered across ranks).  N = 96 frames
(Kuroyanagi & Komatsu 2022 Sec. 3.2: 64 mels, T = 96 frames).
"""
from __future__ import annotations

from .base import SAMPLERS, Sampler


@SAMPLERS.register("clip_pair")
class ClipPair(Sampler):
    """Batch keys: ``x1``, ``x2`` ``[B, 1, F, N]``."""

    keys = ("x1", "x2")

    def __init__(self, n_frames: int = 96, normalize: bool = False):
        super().__init__(normalize)
        self.n_frames = int(n_frames)

    def __call__(self, mel, meta, rng):
        return {"x1": self.norm(self.crop(mel, rng))[None], "x2": self.norm(self.crop(mel, rng))[None]}
