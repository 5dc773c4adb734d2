"""``audio_ntt2022``: the BYOL-A v2 encoder (Niizumi et al., TASLP 2023, arXiv 2204.07402, Sec. III-B, Fig. 4).

AudioNTT2022 keeps the AudioNTT conv front (Conv2d 3x3 @ 64 -> BatchNorm -> ReLU -> MaxPool 2x2) but with
two blocks instead of three, reshapes the ``[B, 64, F/4, T/4]`` map to per-time-step *local* features
``[B, T/4, 64 * F/4]`` (1024-d at 64 mels, channels fastest, as in ``audio_ntt``), passes them through the
MLP ``Linear(1024, 2048) -> ReLU -> Dropout(0.3) -> Linear(2048, 2048) -> ReLU`` for *global* features, and
concatenates local and global features per time step (1024 + 2048 = 3072-d).  The clip embedding is the
temporal ``mean + max`` of those frames (the "statistics" of Sec. III-B).  Parameters at 64 mels, d=2048:
6,333,376 (the paper's "6.3M").
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..base import Encoder
from ..registry import ENCODERS


@ENCODERS.register("audio_ntt2022")
class AudioNTT2022Encoder(Encoder):
    """BYOL-A v2 encoder; ``frames`` = ``[local conv features, MLP output]`` per time step (T/4 frames)."""

    def __init__(self, n_mels: int = 64, d: int = 2048, base_channels: int = 64, conv_blocks: int = 2,
                 dropout: float = 0.3) -> None:
        super().__init__()
        if conv_blocks < 1 or n_mels < 2 ** conv_blocks:
            raise ValueError(f"audio_ntt2022: n_mels={n_mels} too small for {conv_blocks} 2x2 pools")
        self.n_mels = n_mels
        layers: list[nn.Module] = []
        c_in = 1
        for _ in range(conv_blocks):
            layers += [nn.Conv2d(c_in, base_channels, 3, padding=1), nn.BatchNorm2d(base_channels), nn.ReLU(),
                       nn.MaxPool2d(2, stride=2)]
            c_in = base_channels
        self.features = nn.Sequential(*layers)
        self.n_blocks = conv_blocks
        local = base_channels * (n_mels // 2 ** conv_blocks)
        self.fc = nn.Sequential(nn.Linear(local, d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d, d), nn.ReLU())
        self.embedding_dim = self.frame_dim = local + d
        self.time_stride = self.min_frames = 2 ** conv_blocks

    def blocks(self, x: Tensor) -> list[Tensor]:
        """The conv blocks' outputs (after each max-pool)."""
        self.check_input(x)
        out = []
        for i in range(0, 4 * self.n_blocks, 4):
            x = self.features[i:i + 4](x)
            out.append(x)
        return out

    def frames(self, x: Tensor) -> Tensor:
        return self.frames_from_blocks(self.blocks(x))

    def frames_from_blocks(self, blocks: list[Tensor]) -> Tensor:
        h = blocks[-1]
        b, c, f, t = h.shape
        local = h.permute(0, 3, 2, 1).reshape(b, t, f * c)  # channels fastest
        return torch.cat([local, self.fc(local)], dim=-1)

    def pool_frames(self, frames: Tensor) -> Tensor:
        return frames.mean(dim=1) + frames.amax(dim=1)
