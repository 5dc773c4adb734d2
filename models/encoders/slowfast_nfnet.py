"""``slowfast_nfnet_f0``: Slowfast NFNet-F0 of Wang et al. 2022 (HARES), Sec. 2.3, Table 5, Appendix B.

Reconstruction of the (garbled) Table 5, time x frequency (T x F) kernels, per path
(slow | fast); stride is (time, freq):

============  ===========================================  ==========================================
stage         slow path                                    fast path
============  ===========================================  ==========================================
data layer    stride 4, 1 (100 x 128 for a 400 x 128 input)  stride 1, 1 (400 x 128)
stem1         1x3, 16, stride 2, 2                          3x3, 2, stride 2, 2
stem2         1x3, 32                                       3x3, 4
stem3         1x3, 64                                       3x3, 8
stem4         3x3, 128, stride 2, 2                         3x3, 16, stride 2, 2
block1 x1     [1x1,128 | 1x1,128 | 1x3,128 | 1x1,256]       [1x1,16 | 3x1,16 | 1x3,16 | 1x1,32]
block2 x2     [1x1,256 | 1x1,256 | 1x3,256 | 1x1,512]       [1x1,32 | 3x1,32 | 1x3,32 | 1x1,64]
block3 x6     [1x1,768 | 3x1,768 | 1x3,768 | 1x1,1536]      [1x1,96 | 3x1,96 | 1x3,96 | 1x1,192]
block4 x3     [1x1,768 | 3x1,768 | 1x3,768 | 1x1,1536]      [1x1,96 | 3x1,96 | 1x3,96 | 1x1,192]
head          global average pool of both paths, concatenate: 1728 = 1536 + 192 (see below)
============  ===========================================  ==========================================

Each block is an NFNet-F0 bottleneck (Brock et al. 2021) whose two grouped 3x3 convs became the
separable pair "k_t x 1 (time) then 1 x 3 (frequency)" (Appendix B: "3x3 convolutions are replaced
by separable convolutions"); the slow path has no temporal kernel in blocks 1-2 (1x1), as in
Slowfast.  Group width 128 (slow) / 16 (fast); widths are NFNet-F0's (256, 512, 1536, 1536) for the
slow path and 1/8 of them for the fast path; depths (1, 2, 6, 3).  Blocks 2-4 stride (1, 2) on
(time, freq).  No normaliser: scaled weight standardisation (Qiao et al. / Brock et al.) on every
conv, GELU x 1.7015, residual ``x + alpha * skip_gain * SE(f(act(x) * beta))`` with alpha 0.2,
SkipInit gain 0, squeeze-excite ratio 0.5 with gain 2, stochastic depth 0.1 (linearly increasing
over blocks), no dropout.  Fast-to-slow fusion before each of the four stages: a 7x1 (time) conv
with stride 4 in time, then GELU, concatenated to the slow path's channels.

Choices (see docs/models.md for the rationale):

* Feature dimension, 3456 (default) vs 1728.  Table 5 says "Feature dim: 1728" (= 1536 + 192, the
  last block outputs); Table 2 says the model has 63m parameters; the authors' public JAX model has
  a final 1x1 conv doubling each path (NFNet's head) and returns 3456 = 3072 + 384.  Only the
  public configuration reproduces 63m: with the final conv and the public fusion widths this
  module has 62,970,894 parameters (-0.05 %); the paper-table head has 58,171,662 (-7.7 %), and
  Slowfast's 2x-fast-channel fusion without the final conv 54,571,342 (-13.4 %).  So the default is
  ``features=3456`` (final 1x1 conv x2 + GELU, slow 3072 + fast 384); ``features=1728`` drops the
  final conv and averages the activated last block outputs, as Table 5 is written.
* Fusion widths, ``fusion="public"`` (default): the fast-to-slow convs output 64, 256, 512, 1024
  channels before stages 1-4 (the public model; needed for the 63m count).  ``fusion="slowfast"``
  uses Slowfast's recipe of 2x the fast path's channels (32, 64, 128, 384).
* ``slow_input="stride"`` takes every 4th frame (the paper's "strided temporally by 4");
  ``"maxpool"`` max-pools 4 frames as the public code does.
* The frequency stride of blocks 2-4 is applied by the 1x3 frequency conv (the public code puts
  it on the kx1 time conv, which skips every other mel bin).
* The fast stem follows Table 5 (3x3 for all four convs); the public code uses 1x3 for stems 2-3.
* ``frames``: mean over frequency of each path's last map, the fast path average-pooled by 4 in
  time to the slow path's rate (T/16, 6.25 frames/s), concatenated.  ``forward`` = mean of the
  frames, which equals global average pooling of both paths exactly when ceil(T/4) is a multiple
  of 4 (and up to the last partial window otherwise).

Layout is ours, ``[B, C, F, T]``: a paper kernel "k_t x k_f" is ``kernel_size=(k_f, k_t)`` here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, ScaledStdConv2d, SEModule
from timm.models.nfnet import GammaAct
from torch import Tensor, nn

from ..base import Encoder
from ..registry import ENCODERS

GELU_GAMMA = 1.7015043497085571  # Brock et al. 2021: E[gelu(z)^2] correction for z ~ N(0, 1)
WS_EPS = 1e-5

SLOW_WIDTHS = (256, 512, 1536, 1536)
DEPTHS = (1, 2, 6, 3)
SLOW_TIME_KERNELS = (1, 1, 3, 3)   # Table 5, "3x1" row of blocks 1-4 (slow)
FAST_TIME_KERNELS = (3, 3, 3, 3)
FUSION_PUBLIC = (64, 256, 512, 1024)


def ws_conv(c_in: int, c_out: int, kt: int = 1, kf: int = 1, st: int = 1, sf: int = 1, groups: int = 1) -> nn.Conv2d:
    """Scaled-WS conv with a paper "kt x kf" kernel and (time, freq) stride, 'SAME'-style padding."""
    return ScaledStdConv2d(c_in, c_out, (kf, kt), stride=(sf, st), padding=((kf - 1) // 2, (kt - 1) // 2),
                           groups=groups, eps=WS_EPS)


def act() -> nn.Module:
    return GammaAct("gelu", gamma=GELU_GAMMA)


class NFSeparableBlock(nn.Module):
    """NFNet bottleneck with the grouped 3x3 pair replaced by (kt x 1, 1 x 3) convs (Appendix B)."""

    def __init__(self, c_in: int, c_out: int, kt: int, sf: int, group_size: int, beta: float,
                 alpha: float = 0.2, drop_path: float = 0.0) -> None:
        super().__init__()
        mid = c_out // 2
        groups = max(1, mid // group_size)
        self.alpha, self.beta = alpha, beta
        self.act = act()
        if sf > 1 or c_in != c_out:
            pool = nn.AvgPool2d((sf, 1), (sf, 1), ceil_mode=True, count_include_pad=False) if sf > 1 else nn.Identity()
            self.downsample: nn.Module | None = nn.Sequential(pool, ws_conv(c_in, c_out))
        else:
            self.downsample = None
        self.conv1 = ws_conv(c_in, mid)
        self.conv2 = ws_conv(mid, mid, kt=kt, groups=groups)                 # time, k_t x 1
        self.conv2b = ws_conv(mid, mid, kf=3, sf=sf, groups=groups)          # frequency, 1 x 3
        self.conv3 = ws_conv(mid, c_out)
        self.se = SEModule(c_out, rd_channels=c_out // 2)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.skip_gain = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(x) * self.beta
        shortcut = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.act(out))
        out = self.conv2b(self.act(out))
        out = self.conv3(self.act(out))
        out = 2.0 * self.se(out)
        out = self.drop_path(out) * self.skip_gain
        return out * self.alpha + shortcut


class Fuse(nn.Module):
    """Fast-to-slow lateral connection: 7x1 time conv, stride 4 in time, GELU (Slowfast, Kazakos 2021)."""

    def __init__(self, c_fast: int, c_out: int, ratio: int, kernel: int = 7) -> None:
        super().__init__()
        self.conv = ws_conv(c_fast, c_out, kt=kernel, st=ratio)
        self.act = act()

    def forward(self, fast: Tensor, slow: Tensor) -> Tensor:
        f = self.act(self.conv(fast))
        if f.shape[-1] != slow.shape[-1]:  # cannot happen with ceil arithmetic; guard anyway
            f = F.pad(f, (0, max(0, slow.shape[-1] - f.shape[-1])))[..., : slow.shape[-1]]
        return torch.cat([slow, f], dim=1)


def _stem(chans: tuple[int, int, int, int], kernels: tuple, strides: tuple) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 1
    for i, (c, (kt, kf), (st, sf)) in enumerate(zip(chans, kernels, strides)):
        if i:
            layers.append(act())
        layers.append(ws_conv(c_in, c, kt=kt, kf=kf, st=st, sf=sf))
        c_in = c
    return nn.Sequential(*layers)


class Path(nn.Module):
    """One pathway: stem + 4 stages of NF blocks; ``in_extra[i]`` fused channels enter stage i."""

    def __init__(self, widths: tuple[int, ...], group_size: int, time_kernels: tuple[int, ...],
                 stem_kernels: tuple, in_extra: tuple[int, ...], drop_path_rate: float, alpha: float = 0.2) -> None:
        super().__init__()
        stem_c = widths[0] // 2
        self.stem = _stem((stem_c // 8, stem_c // 4, stem_c // 2, stem_c), stem_kernels,
                          ((2, 2), (1, 1), (1, 1), (2, 2)))
        n_blocks, idx, expected_std = sum(DEPTHS), 0, 1.0
        c_in = stem_c
        self.stages = nn.ModuleList()
        for s, (w, depth, kt) in enumerate(zip(widths, DEPTHS, time_kernels)):
            blocks = []
            for b in range(depth):
                blocks.append(NFSeparableBlock(
                    c_in + (in_extra[s] if b == 0 else 0), w, kt=kt, sf=2 if (s > 0 and b == 0) else 1,
                    group_size=group_size, beta=1.0 / expected_std, alpha=alpha,
                    drop_path=drop_path_rate * idx / n_blocks))
                c_in, idx = w, idx + 1
                if b == 0:
                    expected_std = 1.0
                expected_std = (expected_std ** 2 + alpha ** 2) ** 0.5
            self.stages.append(nn.Sequential(*blocks))
        self.out_channels = c_in


@ENCODERS.register("slowfast_nfnet_f0")
class SlowFastNFNetF0(Encoder):
    """Wang et al. 2022, Table 5 / Appendix B (see module docstring for every reconstruction choice)."""

    def __init__(self, n_mels: int = 80, features: int = 3456, fusion: str = "public", slow_input: str = "stride",
                 alpha_time: int = 4, beta_channels: int = 8, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if features not in (1728, 3456):
            raise ValueError("slowfast_nfnet_f0: features must be 1728 (paper table) or 3456 (public code)")
        if fusion not in ("slowfast", "public"):
            raise ValueError("slowfast_nfnet_f0: fusion must be 'slowfast' or 'public'")
        if slow_input not in ("stride", "maxpool"):
            raise ValueError("slowfast_nfnet_f0: slow_input must be 'stride' or 'maxpool'")
        self.n_mels, self.alpha_time, self.slow_input = n_mels, alpha_time, slow_input
        fast_widths = tuple(w // beta_channels for w in SLOW_WIDTHS)
        fast_in = (fast_widths[0] // 2,) + fast_widths[:3]  # fast channels entering each stage
        fuse = tuple(2 * c for c in fast_in) if fusion == "slowfast" else FUSION_PUBLIC
        self.fast = Path(fast_widths, 128 // beta_channels, FAST_TIME_KERNELS,
                         ((3, 3), (3, 3), (3, 3), (3, 3)), (0, 0, 0, 0), drop_path_rate)
        self.slow = Path(SLOW_WIDTHS, 128, SLOW_TIME_KERNELS,
                         ((1, 3), (1, 3), (1, 3), (3, 3)), fuse, drop_path_rate)
        self.fuse = nn.ModuleList(Fuse(c_f, c_o, alpha_time) for c_f, c_o in zip(fast_in, fuse))
        cs, cf = self.slow.out_channels, self.fast.out_channels
        if features == 3456:
            self.final_slow, self.final_fast = ws_conv(cs, 2 * cs), ws_conv(cf, 2 * cf)
            cs, cf = 2 * cs, 2 * cf
        else:
            self.final_slow = self.final_fast = None  # type: ignore[assignment]
        self.final_act = act()
        self.slow_dim, self.fast_dim = cs, cf
        self.embedding_dim = self.frame_dim = cs + cf
        self.time_stride, self.min_frames = 4 * alpha_time, 1

    def _slow_input(self, x: Tensor) -> Tensor:
        if self.slow_input == "stride":
            return x[..., :: self.alpha_time]
        return F.max_pool2d(x, (1, self.alpha_time), (1, self.alpha_time), ceil_mode=True)

    def blocks(self, x: Tensor) -> list[Tensor]:
        """[slow_1, fast_1, ..., slow_4, fast_4, slow_final, fast_final] (final = after the head act)."""
        self.check_input(x)
        s, f = self.slow.stem(self._slow_input(x)), self.fast.stem(x)
        out = []
        for fuse, slow_stage, fast_stage in zip(self.fuse, self.slow.stages, self.fast.stages):
            s = slow_stage(fuse(f, s))
            f = fast_stage(f)
            out += [s, f]
        if self.final_slow is not None:
            s, f = self.final_slow(s), self.final_fast(f)
        out += [self.final_act(s), self.final_act(f)]
        return out

    def frames(self, x: Tensor) -> Tensor:
        return self.frames_from_blocks(self.blocks(x))

    def frames_from_blocks(self, maps: list[Tensor]) -> Tensor:
        s = maps[-2].mean(dim=2)                                   # [B, Cs, Ts]
        f = F.avg_pool1d(maps[-1].mean(dim=2), self.alpha_time, self.alpha_time, ceil_mode=True,
                         count_include_pad=False)                  # [B, Cf, Ts]
        return torch.cat([s, f[..., : s.shape[-1]]], dim=1).transpose(1, 2)

    def pool_frames(self, frames: Tensor) -> Tensor:
        return frames.mean(dim=1)
