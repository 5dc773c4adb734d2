"""``mobile``: the 125k-parameter on-device encoder of Tagliasacchi et al. 2019 (Sec. 4, Table 1).

Table 1 (input 96 frames x 64 mels): five conv layers with 8, 16, 32, 64, 128 channels, each halving
time and frequency, then global max-pool and a fully connected layer to ``d = 128``.  "Each
convolutional layer consists of a series of two convolutions, one along the time axis (3x1xC_in x
C_out) and one along the frequency axis (1x3xC_in x C_out), in parallel to a pointwise 1x1
convolution as a residual connection.  All activation functions are ReLUs and batch normalization is
used in all convolutional layers.  Each layer is followed by max-pooling" (Sec. 4).  The frequency
conv here maps C_out -> C_out (it follows the time conv): the only reading that reproduces the
per-layer parameter counts of Table 1 (0.2k / 1k / 5k / 20k / 82k).

Choices the paper leaves open (documented in docs/models.md):

* BatchNorm placement: after the time conv (then ReLU) and after the sum of the frequency conv and
  the residual conv (then ReLU, then 2x2 max-pool).  Convs before a BatchNorm carry no bias.  This
  gives 126,528 parameters (paper: "approximately 125k"; conv + FC weights alone are 125,536).
* Pooling floors odd sizes (TF "VALID"), so the encoder needs at least 32 frames.
* ``width`` multiplies the channels; ``width=4, d=256`` is the larger encoder of Sec. 4 / Table 5.

Layout is ours, ``[B, C, F, T]``: the paper's 3x1 time kernel is ``kernel_size=(1, 3)`` here.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..base import Encoder
from ..registry import ENCODERS

CHANNELS = (8, 16, 32, 64, 128)


class MobileLayer(nn.Module):
    """One Table 1 layer: (3x1 time conv -> BN -> ReLU -> 1x3 freq conv) + 1x1 conv -> BN -> ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.time_conv = nn.Conv2d(c_in, c_out, (1, 3), padding=(0, 1), bias=False)
        self.time_bn = nn.BatchNorm2d(c_out)
        self.freq_conv = nn.Conv2d(c_out, c_out, (3, 1), padding=(1, 0), bias=False)
        self.residual = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        y = self.freq_conv(torch.relu(self.time_bn(self.time_conv(x))))
        return torch.relu(self.bn(y + self.residual(x)))


@ENCODERS.register("mobile")
class MobileEncoder(Encoder):
    """Tagliasacchi et al. 2019, Table 1; ``frames`` = max over frequency of layer 5 (pre-FC)."""

    def __init__(self, n_mels: int = 64, d: int = 128, width: int = 1) -> None:
        super().__init__()
        if n_mels < 32:
            raise ValueError("mobile: n_mels must be >= 32 (five 2x2 max-pools)")
        self.n_mels, self.width = n_mels, width
        chans = [c * width for c in CHANNELS]
        self.layers = nn.ModuleList(MobileLayer(a, b) for a, b in zip([1] + chans[:-1], chans))
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(chans[-1], d)
        self.embedding_dim, self.frame_dim = d, chans[-1]
        self.time_stride, self.min_frames = 32, 32

    def blocks(self, x: Tensor) -> list[Tensor]:
        self.check_input(x)
        out = []
        for layer in self.layers:
            x = self.pool(layer(x))
            out.append(x)
        return out

    def frames(self, x: Tensor) -> Tensor:
        return self.frames_from_blocks(self.blocks(x))

    def frames_from_blocks(self, blocks: list[Tensor]) -> Tensor:
        return blocks[-1].amax(dim=2).transpose(1, 2)  # [B, T/32, C]

    def pool_frames(self, frames: Tensor) -> Tensor:
        return self.fc(frames.amax(dim=1))  # global max-pool, then FC (Sec. 4)
