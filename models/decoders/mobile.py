"""``mobile``: the ``mobile`` encoder reversed (Tagliasacchi et al. 2019, Sec. 3; see the package docstring)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..encoders.mobile import CHANNELS
from ..registry import DECODERS
from .base import Decoder


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


@DECODERS.register("mobile")
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
