"""``views_v2``: BYOL-A v2's two views (Niizumi et al., TASLP 2023, arXiv 2204.07402, Sec. III-A, Fig. 3).

The ``views`` sampler (pre-normalisation, log-mixup-exp, random resize crop, post-normalisation; BYOL-A
v1) plus v2's new block, the **random linear fader** (RLF), applied to each view after the random resize
crop: a gain that moves linearly over the segment, from ``a`` at the first frame to ``b`` at the last,
``a, b ~ U(-gain, gain)`` (gain 1.0), added to every mel bin of the (pre-normalised) log-mel:
``x'[f, t] = x[f, t] + a + (b - a) t / (T - 1)``.  In the log domain an added constant is a volume change,
so this approximates a sound fading in or out over the segment (Sec. III-A).

Everything else (memory size, alpha, crop scales) is ``views``' defaults, which v2 keeps.  With
``augment_on='device'`` the device twin (``pipeline.device.ViewsAugment``, ``fader=True``) applies the same
fader after its random resize crop.
"""
from __future__ import annotations

import numpy as np

from .base import SAMPLERS
from .views import Views


def random_linear_fader(x: np.ndarray, rng: np.random.Generator, gain: float = 1.0) -> tuple[np.ndarray, float, float]:
    """RLF on a log-mel ``[F, T]``: ``(x + ramp, a, b)`` with the ramp from ``a`` to ``b``, both ``~ U(-gain, gain)``."""
    a, b = (float(v) for v in rng.uniform(-gain, gain, size=2))
    n_t = x.shape[-1]
    ramp = np.linspace(a, b, n_t, dtype=np.float32) if n_t > 1 else np.full(1, a, dtype=np.float32)
    return (x + ramp[None, :]).astype(np.float32, copy=False), a, b


@SAMPLERS.register("views_v2")
class ViewsV2(Views):
    """Batch keys ``x1``, ``x2``; ``views`` + random linear fader (``fader=False`` gives back ``views``)."""

    def __init__(self, n_frames: int = 96, fader: bool = True, fader_gain: float = 1.0, **kw):
        super().__init__(n_frames=n_frames, **kw)
        self.fader, self.fader_gain = bool(fader), float(fader_gain)
        if self.fader_gain < 0:
            raise ValueError("views_v2: fader_gain must be >= 0")

    def view(self, x: np.ndarray, rng: np.random.Generator, lin=None) -> np.ndarray:
        y = super().view(x, rng, lin)
        if self.fader:
            y, _, _ = random_linear_fader(y, rng, self.fader_gain)
        return y

    def device_options(self) -> dict:
        return {"fader": self.fader, "fader_gain": self.fader_gain}

    def batch_views(self, x: np.ndarray, valid: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``views``' batched views, then the fader on each view of each row (one ``(a, b)`` draw per view,
        as :meth:`view` does one example at a time), before the post-normalisation in ``collate``."""
        x1, x2 = super().batch_views(x, valid, rng)
        if self.fader:
            n_t = x1.shape[-1]
            ab = rng.uniform(-self.fader_gain, self.fader_gain, size=(2, x1.shape[0], 2)).astype(np.float32)
            t = (np.arange(n_t, dtype=np.float32) / max(n_t - 1, 1))[None, :]
            for v, out in enumerate((x1, x2)):
                ramp = ab[v, :, :1] + (ab[v, :, 1:] - ab[v, :, :1]) * t  # [B, T]
                out += ramp[:, None, None, :]
        return x1, x2

    def config(self):
        import inspect

        base = {k: getattr(self, k) for k in inspect.signature(Views.__init__).parameters if hasattr(self, k)}
        return {**base, "fader": self.fader, "fader_gain": self.fader_gain}
