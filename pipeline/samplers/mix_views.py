"""``mix_views``: SimCLR views of HARES (Wang et al. 2022, Sec. 3 and App. C).

Two random 3-second crops (300 frames at a 10 ms hop) of the same clip, each standardised by its own
mean and standard deviation (App. C), then example mixing: every view becomes
``l x + (1 - l) x_other`` with ``l ~ Beta(5, 2)`` drawn on the fly (App. C) and ``x_other`` the same view
of another example of the batch.  The mixing needs the batch, so it runs in the worker right after
collation (``collate``); batches are per rank, so partners are drawn within the rank's batch.
"""
from __future__ import annotations

from ..augment import mix_examples, standardize
from .base import SAMPLERS, Sampler


@SAMPLERS.register("mix_views")
class MixViews(Sampler):
    """Batch keys: ``x1``, ``x2`` ``[B, 1, F, 300]``."""

    keys = ("x1", "x2")

    def __init__(self, n_frames: int = 300, standardize: bool = True, mix: bool = True,
                 beta: tuple = (5.0, 2.0), normalize: bool = False):
        super().__init__(normalize)
        self.n_frames = int(n_frames)
        self.standardize = bool(standardize)
        self.mix = bool(mix)
        self.beta = (float(beta[0]), float(beta[1]))

    @property
    def input_norm(self):
        return {"type": "per_example"} if self.standardize else super().input_norm

    def _one(self, mel, rng):
        x = self.norm(self.crop(mel, rng))
        return (standardize(x) if self.standardize else x)[None]

    def __call__(self, mel, meta, rng):
        return {"x1": self._one(mel, rng), "x2": self._one(mel, rng)}

    def collate(self, batch, rng):
        if self.mix:
            v = batch.get("valid")
            batch["x1"] = mix_examples(batch["x1"], rng, self.beta, v)[0]
            batch["x2"] = mix_examples(batch["x2"], rng, self.beta, v)[0]
        return batch
