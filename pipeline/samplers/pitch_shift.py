"""``pitch_shift``: the task-specific strategy of Kuroyanagi & Komatsu 2022 (Sec. 2.3).

A copy of the crop pitch-shifted by ``a ~ U(0.8, 1.2)`` (Sec. 3.2 gives the range [0.8, 1.2]; the
paper redraws ``a`` every epoch, we draw it per example), with ``a`` as the regression target.  The
shift is done in the log-mel domain: output bin m takes the input at frequency ``f_m / a`` (linear
interpolation on the mel axis; see ``augment.pitch_shift``), so content at f moves to ``a f``.  Bins
whose source lies outside the filterbank are filled with the crop's minimum (``fill='min'``).

Composes onto any sampler (``clip_pair+pitch_shift`` is the multi-strategy method): it shifts the
base example's ``x1`` (or ``x``) and adds ``x_pitch`` and ``pitch_factor``.  Alone it makes ``x1`` from
one random crop.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from shards.frontend import get_preset

from ..augment import pitch_shift
from .base import SAMPLERS, Sampler


@SAMPLERS.register("pitch_shift")
class PitchShift(Sampler):
    """Batch keys: ``x1`` (alone only), ``x_pitch`` ``[B, 1, F, N]``, ``pitch_factor`` ``[B]``."""

    keys = ("x1", "x_pitch", "pitch_factor")
    addon_keys = ("x_pitch", "pitch_factor")

    def __init__(self, n_frames: int = 96, low: float = 0.8, high: float = 1.2, fill: Any = "min",
                 frontend: Any = None, normalize: bool = False):
        super().__init__(normalize)
        self.n_frames = int(n_frames)
        self.low, self.high = float(low), float(high)
        if not 0 < self.low <= self.high:
            raise ValueError("pitch_shift needs 0 < low <= high")
        self.fill = fill
        if isinstance(frontend, str):
            frontend = get_preset(frontend).to_dict()
        elif frontend is not None and not isinstance(frontend, dict):
            frontend = frontend.to_dict()
        self._fixed_frontend = frontend
        if frontend is not None:
            self.frontend = dict(frontend)

    def bind(self, facts) -> None:
        super().bind(facts)
        if self._fixed_frontend is not None:
            self.frontend = dict(self._fixed_frontend)

    def augment(self, ex: dict, mel: Any, rng: np.random.Generator) -> dict:
        base = ex["x1"] if "x1" in ex else ex["x"]
        if not self.frontend:
            raise ValueError("pitch_shift needs the frontend: bind the manifest facts or pass frontend=")
        if int(self.frontend["n_mels"]) != base.shape[-2]:
            raise ValueError(f"pitch_shift: frontend has {self.frontend['n_mels']} mels, input has {base.shape[-2]}")
        a = float(rng.uniform(self.low, self.high))
        ex["x_pitch"] = pitch_shift(base[0], self.frontend, a, self.fill)[None]
        ex["pitch_factor"] = np.float32(a)
        return ex

    def __call__(self, mel, meta, rng):
        return self.augment({"x1": self.norm(self.crop(mel, rng))[None]}, mel, rng)
