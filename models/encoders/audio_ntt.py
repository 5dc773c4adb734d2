"""``audio_ntt``: the BYOL-A encoder (Niizumi et al. 2021, Appendix A, Table IV), also DeLoRes' encoder
(Ghosh et al. 2022, Sec. III-A, Table I).

Table IV: three blocks of Conv2d 3x3 @ 64 channels (padding 1) -> BatchNorm2d -> ReLU -> MaxPool2d 2x2
on the ``[B, 1, F=64, T]`` input; the ``[B, 64, F/8, T/8]`` map is reshaped to ``[B, T/8, 64 * F/8]``
(= ``[B, 12, 512]`` for 96 frames) and passed through ``Linear(512, d) -> ReLU -> Dropout(0.3) ->
Linear(d, d) -> ReLU``; the embedding is ``max over time + mean over time``.  Parameters:
600,192 (d=512), 1,649,792 (d=1024), 5,321,856 (d=2048) -- reproduced exactly.

State-dict keys follow the official release (``features.0/1/4/5/8/9.*``, ``fc.0.*``, ``fc.3.*``) and
the reshape flattens ``(F/8, C)`` with channels fastest (time, mel, channel order), so an official
BYOL-A ``.pth`` loads with ``load_state_dict`` without renaming.  ``n_mels`` other than 64 changes the
first FC's input size (``64 * n_mels // 8``).  Default ``d = 2048`` (Table IV; DeLoRes uses 2048).
"""
from __future__ import annotations

from torch import Tensor, nn

from ..base import Encoder
from ..registry import ENCODERS


def _conv_block(c_in: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, 64, 3, stride=1, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2, stride=2)]


@ENCODERS.register("audio_ntt")
class AudioNTTEncoder(Encoder):
    """Niizumi et al. 2021, Table IV; ``frames`` = the FC output per time step (T/8 frames)."""

    def __init__(self, n_mels: int = 64, d: int = 2048, dropout: float = 0.3) -> None:
        super().__init__()
        if n_mels < 8:
            raise ValueError("audio_ntt: n_mels must be >= 8")
        self.n_mels = n_mels
        self.features = nn.Sequential(*_conv_block(1), *_conv_block(64), *_conv_block(64))
        self.fc = nn.Sequential(
            nn.Linear(64 * (n_mels // 8), d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d, d), nn.ReLU(),
        )
        self.embedding_dim = self.frame_dim = d
        self.time_stride, self.min_frames = 8, 8

    def blocks(self, x: Tensor) -> list[Tensor]:
        """The three conv blocks B1-B3 of DeLoRes Table I (after each max-pool)."""
        self.check_input(x)
        out = []
        for i in range(0, 12, 4):
            x = self.features[i:i + 4](x)
            out.append(x)
        return out

    def frames(self, x: Tensor) -> Tensor:
        return self.frames_from_blocks(self.blocks(x))

    def frames_from_blocks(self, blocks: list[Tensor]) -> Tensor:
        h = blocks[-1]                                # [B, C, F', T']
        b, c, f, t = h.shape
        h = h.permute(0, 3, 2, 1).reshape(b, t, f * c)  # [B, T', F' * C], channels fastest
        return self.fc(h)

    def pool_frames(self, frames: Tensor) -> Tensor:
        return frames.amax(dim=1) + frames.mean(dim=1)
