"""Encoders built from timm image models with one input channel (``in_chans=1``), no classifier.

The spectrogram ``[B, 1, F, T]`` is treated as a one-channel image (H = mel, W = time).  All three
downsample time by 32; ``frames`` = mean over frequency of the last feature map, ``forward`` = mean
over time of the frames (= global average pooling, as in Wang et al. 2022, Sec. 2.1).

* ``efficientnet_b0`` -- Kuroyanagi & Komatsu 2022 (Sec. 3.2), DeLoRes (Sec. V-E, Table XI), Wang et
  al. 2022 (Table 2: 4.0m).  ``head="cola"`` adds Kuroyanagi's per-frame head: "average pooling in
  the frequency direction of the last layer ... embedding vectors h of size 512x3 ... a 512-unit fully
  connected layer, followed by the Layer Normalization and tanh" (Sec. 3.2).
* ``resnet50`` -- Wang et al. 2022, Table 2 (23m).
* ``nfnet_f0`` -- Wang et al. 2022, Table 2 (68m); timm's NFNet-F0 including its final 1x1 conv
  (1536 -> 3072), so ``embedding_dim = 3072``.
"""
from __future__ import annotations

import timm
from torch import Tensor, nn

from ..base import Encoder
from ..registry import ENCODERS


class TimmEncoder(Encoder):
    """Shared logic: ``blocks`` lists stage outputs; the last one feeds ``frames``."""

    arch: str = ""

    def _build(self, n_mels: int, drop_path_rate: float) -> int:
        self.n_mels = n_mels
        self.model = timm.create_model(
            self.arch, pretrained=False, in_chans=1, num_classes=0, global_pool="", drop_path_rate=drop_path_rate,
        )
        self.time_stride, self.min_frames = 32, 1
        return int(self.model.num_features)

    def _stages(self) -> list[tuple[nn.Module, bool]]:
        """(module, is_block_output) applied in sequence."""
        raise NotImplementedError

    def blocks(self, x: Tensor) -> list[Tensor]:
        self.check_input(x)
        out = []
        for module, record in self._stages():
            x = module(x)
            if record:
                out.append(x)
        return out

    def frames(self, x: Tensor) -> Tensor:
        return self.frames_from_blocks(self.blocks(x))

    def frames_from_blocks(self, blocks: list[Tensor]) -> Tensor:
        return blocks[-1].mean(dim=2).transpose(1, 2)  # [B, T/32, C]

    def pool_frames(self, frames: Tensor) -> Tensor:
        return frames.mean(dim=1)


@ENCODERS.register("efficientnet_b0")
class EfficientNetB0Encoder(TimmEncoder):
    """timm ``efficientnet_b0``; ``head="cola"``: per-frame Linear(1280, 512) + LayerNorm + tanh."""

    arch = "efficientnet_b0"

    def __init__(self, n_mels: int = 64, head: str = "none", head_dim: int = 512, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        c = self._build(n_mels, drop_path_rate)
        if head == "none":
            self.head = None
            d = c
        elif head == "cola":
            self.head = nn.Sequential(nn.Linear(c, head_dim), nn.LayerNorm(head_dim), nn.Tanh())
            d = head_dim
        else:
            raise ValueError(f"efficientnet_b0: head must be 'none' or 'cola', got {head!r}")
        self.embedding_dim = self.frame_dim = d

    def _stages(self) -> list[tuple[nn.Module, bool]]:
        m = self.model
        return [(m.conv_stem, False), (m.bn1, False), *[(s, True) for s in m.blocks],
                (m.conv_head, False), (m.bn2, True)]

    def frames_from_blocks(self, blocks: list[Tensor]) -> Tensor:
        h = super().frames_from_blocks(blocks)
        return h if self.head is None else self.head(h)


@ENCODERS.register("resnet50")
class ResNet50Encoder(TimmEncoder):
    """timm ``resnet50``; blocks = outputs of layer1..layer4."""

    arch = "resnet50"

    def __init__(self, n_mels: int = 64, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.embedding_dim = self.frame_dim = self._build(n_mels, drop_path_rate)

    def _stages(self) -> list[tuple[nn.Module, bool]]:
        m = self.model
        return [(m.conv1, False), (m.bn1, False), (m.act1, False), (m.maxpool, False),
                (m.layer1, True), (m.layer2, True), (m.layer3, True), (m.layer4, True)]


@ENCODERS.register("nfnet_f0")
class NFNetF0Encoder(TimmEncoder):
    """timm ``nfnet_f0``; blocks = the four stage outputs and the final conv (3072 channels)."""

    arch = "nfnet_f0"

    def __init__(self, n_mels: int = 64, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.embedding_dim = self.frame_dim = self._build(n_mels, drop_path_rate)

    def _stages(self) -> list[tuple[nn.Module, bool]]:
        m = self.model
        return [(m.stem, False), *[(s, True) for s in m.stages], (nn.Sequential(m.final_conv, m.final_act), True)]

