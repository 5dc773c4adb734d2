"""``mlp``: the generic decoder for every encoder without a mirrored one."""
from __future__ import annotations

from torch import Tensor, nn

from ..registry import DECODERS
from .base import Decoder


@DECODERS.register("mlp")
class MLPDecoder(Decoder):
    """Generic decoder: embedding -> hidden -> ``out_slices x F x N``."""

    def __init__(self, in_dim: int, n_mels: int = 64, n_frames: int = 96, out_slices: int = 1,
                 hidden: int = 1024) -> None:
        super().__init__()
        self._set(in_dim, n_mels, n_frames, out_slices)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_slices * n_mels * n_frames))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], self.out_slices, self.n_mels, self.n_frames)
