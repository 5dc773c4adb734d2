"""Decoders from an embedding to log-mel slices ``[B, out_slices, F, N]`` (Audio2Vec, AutoEncoder).

* ``mobile`` -- Tagliasacchi et al. 2019, Sec. 3: "the architecture of the decoder is obtained by
  reversing the order of the layers in the encoder and replacing max-pooling with nearest-neighbor
  upsampling"; for skip-gram "the last convolutional layer has 2P output channels".  The encoder's
  global max-pool + FC is inverted by an FC (+ ReLU) to the ``128w x F/32 x N/32`` map (the paper
  does not say how; a spatially constant map could not be decoded), then five layers
  ``upsample x2 -> (3x1 time conv -> BN -> ReLU -> 1x3 freq conv) + 1x1 conv -> BN -> ReLU`` with
  channels 128w -> 64w -> 32w -> 16w -> 8w -> ``out_slices``; the last layer is linear (no BN/ReLU,
  convs with bias) since it regresses log-mel values for the MSE loss.  Sizes not divisible by 32
  are upsampled past the target and cropped.
* ``mlp`` -- the generic decoder for every other encoder: ``Linear(in_dim, hidden) -> ReLU ->
  Linear(hidden, out_slices * F * N)``, reshaped.

``out_slices`` is 1 for CBoW and the AutoEncoder and 2P for skip-gram; ``in_dim`` is the
encoder's ``embedding_dim`` (AutoEncoder, skip-gram) or ``2P * embedding_dim`` (CBoW).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .base import Encoder
from .encoders.mobile import CHANNELS
from .registry import DECODERS, register_decoder


class Decoder(nn.Module):
    """``forward(z [B, in_dim]) -> [B, out_slices, n_mels, n_frames]``."""

    in_dim: int
    n_mels: int
    n_frames: int
    out_slices: int

    def _set(self, in_dim: int, n_mels: int, n_frames: int, out_slices: int) -> None:
        self.in_dim, self.n_mels, self.n_frames, self.out_slices = in_dim, n_mels, n_frames, out_slices


class _UpLayer(nn.Module):
    """Mirror of ``MobileLayer``; ``last=True`` drops BN/ReLU for a linear output."""

    def __init__(self, c_in: int, c_out: int, last: bool = False) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.time_conv = nn.Conv2d(c_in, c_out, (1, 3), padding=(0, 1), bias=False)
        self.time_bn = nn.BatchNorm2d(c_out)
        self.freq_conv = nn.Conv2d(c_out, c_out, (3, 1), padding=(1, 0), bias=last)
        self.residual = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = None if last else nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.up(x)
        y = self.freq_conv(torch.relu(self.time_bn(self.time_conv(x)))) + self.residual(x)
        return y if self.bn is None else torch.relu(self.bn(y))


@register_decoder("mobile")
class MobileDecoder(Decoder):
    """Tagliasacchi et al. 2019, Sec. 3: the ``mobile`` encoder reversed, max-pool -> upsampling."""

    def __init__(self, in_dim: int = 128, n_mels: int = 64, n_frames: int = 96, out_slices: int = 1,
                 width: int = 1) -> None:
        super().__init__()
        self._set(in_dim, n_mels, n_frames, out_slices)
        chans = [c * width for c in CHANNELS][::-1]          # 128w, 64w, 32w, 16w, 8w
        self.f0, self.t0 = math.ceil(n_mels / 32), math.ceil(n_frames / 32)
        self.fc = nn.Linear(in_dim, chans[0] * self.f0 * self.t0)
        outs = chans[1:] + [out_slices]
        self.layers = nn.ModuleList(
            _UpLayer(a, b, last=(i == len(outs) - 1)) for i, (a, b) in enumerate(zip(chans, outs)))
        self.c0 = chans[0]

    def forward(self, z: Tensor) -> Tensor:
        x = torch.relu(self.fc(z)).view(z.shape[0], self.c0, self.f0, self.t0)
        for layer in self.layers:
            x = layer(x)
        return x[:, :, : self.n_mels, : self.n_frames]


@register_decoder("mlp")
class MLPDecoder(Decoder):
    """Generic decoder: embedding -> hidden -> ``out_slices x F x N``."""

    def __init__(self, in_dim: int, n_mels: int = 64, n_frames: int = 96, out_slices: int = 1,
                 hidden: int = 1024) -> None:
        super().__init__()
        self._set(in_dim, n_mels, n_frames, out_slices)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_slices * n_mels * n_frames))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], self.out_slices, self.n_mels, self.n_frames)


def build_decoder(encoder: Encoder | str, *, in_dim: int | None = None, n_frames: int = 96,
                  n_mels: int | None = None, out_slices: int = 1, kind: str | None = None,
                  **kwargs: Any) -> Decoder:
    """Decoder for ``encoder`` (an Encoder or its name): mirrored for ``mobile``, ``mlp`` otherwise.

    ``in_dim`` defaults to the encoder's ``embedding_dim`` and ``n_mels`` to its ``n_mels``
    (64 for a name); the mirrored decoder inherits the encoder's ``width``.
    """
    enc = encoder if isinstance(encoder, Encoder) else None
    name = enc.name if enc is not None else str(encoder)
    kind = kind or ("mobile" if name == "mobile" else "mlp")
    if in_dim is None:
        if enc is None:
            raise ValueError("build_decoder: in_dim is required when the encoder is given by name")
        in_dim = enc.embedding_dim
    if n_mels is None:
        n_mels = enc.n_mels if enc is not None else 64
    if kind == "mobile" and enc is not None and "width" not in kwargs:
        kwargs["width"] = getattr(enc, "width", 1)
    cls = DECODERS.get(kind)
    return cls(in_dim=in_dim, n_mels=n_mels, n_frames=n_frames, out_slices=out_slices, **kwargs)
