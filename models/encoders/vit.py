"""``vit_tiny`` / ``vit_small`` / ``vit_base``: ViT patch encoders over log-mels (timm ``PatchEmbed`` + ``Block``).

The spectrogram ``[B, 1, F, T]`` is cut into non-overlapping 16x16 patches over (mel, time) (Audio-MAE,
Huang et al. 2022, Sec. 3.1; M2D, Niizumi et al. 2023, Sec. 3 "Processing input"), linearly embedded,
given fixed 2-D sin-cos positional embeddings (MAE / M2D) and run through pre-norm transformer blocks
(ViT-Base: 12 x 768, 12 heads, MLP 3072; Dosovitskiy et al. 2021, Table 1).  A CLS token is prepended
(as in MAE/M2D) and dropped from every output.

Patch order is frequency-major: patch ``(f, t)`` of the ``F/16 x T'/16`` grid has index ``f * (T'/16) + t``
(timm's ``PatchEmbed`` flattening).  The masking sampler and the masked objectives use that order.

Interface (docs/models.md):

* ``frames(x) -> [B, ceil(T/16), (F/16) * D]``: one vector per 16-frame time step, the ``F/16`` frequency
  patches of that step concatenated in frequency order (M2D's evaluation features: 5 x 768 = 3840-d at 80
  mels), after the final LayerNorm; 6.25 frames/s.
* ``forward(x)``: the mean of ``frames`` over time (M2D's clip embedding).
* ``blocks(x)``: every transformer layer's output as a map ``[B, D, F/16, T'/16]`` (layer-wise probes).

Lengths: ``T`` is zero-padded to a multiple of 16 (the padding's frames are dropped from ``frames``).
``n_frames`` is the training input length whose position grid the encoder is built for (608 frames, M2D
Sec. 4.1 / 2404.06095 Sec. IV-A; 1024 for Audio-MAE Sec. 4.1).  A shorter input uses the first columns of
the grid (a patch keeps its time position).  A longer one, by ``long_input``:

* ``"interpolate"`` (default): the time positions are scaled into the training grid's span and the fixed
  sin-cos function is evaluated there (an exact interpolation of the table; export keeps time dynamic);
* ``"extend"``: the sin-cos table is evaluated at the further positions;
* ``"chunk"``: the input is split into ``n_frames`` chunks encoded separately, frames concatenated (what
  M2D's evaluation code does for long clips).
"""
from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from ..base import Encoder
from ..registry import ENCODERS

LONG_INPUT = ("interpolate", "extend", "chunk")


def sincos_positions(f_pos: Tensor, t_pos: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """Fixed 2-D sin-cos positional embeddings (MAE's table) at real-valued grid coordinates: ``f_pos [Nf]``,
    ``t_pos [Nt]`` -> ``[Nf * Nt, dim]`` in patch order; per patch ``[sin(f w), sin(t w), cos(f w), cos(t w)]``
    with ``w_k = temperature^(-k / (dim/4))`` (the layout of timm's ``build_sincos2d_pos_embed``; tested equal
    on integer grids).  Pure tensor ops, so the time length stays dynamic under ``torch.export``."""
    if dim % 4:
        raise ValueError(f"sin-cos positions need dim % 4 == 0, got {dim}")
    q = dim // 4
    w = temperature ** (-torch.arange(q, dtype=torch.float32, device=t_pos.device) / q)
    nf, nt = f_pos.shape[0], t_pos.shape[0]
    f = f_pos.to(torch.float32)[:, None].expand(nf, nt).reshape(-1, 1) * w
    t = t_pos.to(torch.float32)[None, :].expand(nf, nt).reshape(-1, 1) * w
    return torch.cat([torch.sin(f), torch.sin(t), torch.cos(f), torch.cos(t)], dim=-1)


def sincos_table(n_freq: int, n_time: int, dim: int) -> Tensor:
    """The table on the integer grid ``n_freq x n_time``."""
    return sincos_positions(torch.arange(n_freq), torch.arange(n_time), dim)


class ViTEncoder(Encoder):
    """Shared ViT logic; the registered sizes only change width / depth / heads."""

    def __init__(self, n_mels: int = 80, n_frames: int = 608, patch_size: int = 16, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0,
                 long_input: str = "interpolate") -> None:
        super().__init__()
        p = int(patch_size)
        if n_mels % p or n_mels < p:
            raise ValueError(f"{self.name}: n_mels={n_mels} must be a positive multiple of the patch size {p}")
        if n_frames % p or n_frames < p:
            raise ValueError(f"{self.name}: n_frames={n_frames} must be a positive multiple of the patch size {p}")
        if long_input not in LONG_INPUT:
            raise ValueError(f"{self.name}: long_input must be one of {LONG_INPUT}, got {long_input!r}")
        self.n_mels, self.train_frames, self.patch_size, self.long_input = int(n_mels), int(n_frames), p, long_input
        self.grid_f, self.grid_t = n_mels // p, n_frames // p
        self.dim = int(embed_dim)
        self.patch_embed = PatchEmbed(img_size=(n_mels, n_frames), patch_size=p, in_chans=1, embed_dim=embed_dim,
                                      strict_img_size=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_table(self.grid_f, self.grid_t, embed_dim), persistent=False)
        dpr = [float(v) for v in torch.linspace(0, drop_path_rate, depth)]
        self.blocks_ = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=dpr[i],
                                            norm_layer=partial(nn.LayerNorm, eps=1e-6)) for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.embedding_dim = self.frame_dim = self.grid_f * embed_dim
        self.time_stride, self.min_frames = p, 1
        self._init_weights()

    # -- init (MAE, He et al. 2022, App. A.1: xavier-uniform linear layers, patch embedding as a linear) ----
    def _init_weights(self) -> None:
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        for m in self.blocks_.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # -- patches and positions ---------------------------------------------------------------------------
    def patchify(self, x: Tensor) -> Tensor:
        """``[B, 1, F, T] -> [B, (F/p)(T/p), p*p]`` in patch order (pixels mel-major within a patch, like the
        conv weights of ``PatchEmbed``). ``T`` must be a multiple of ``p``."""
        b, _, f, t = x.shape
        p = self.patch_size
        x = x.reshape(b, f // p, p, t // p, p).permute(0, 1, 3, 2, 4)
        return x.reshape(b, (f // p) * (t // p), p * p)

    def pos_for(self, n_time: int) -> Tensor:
        """Positional embeddings ``[grid_f * n_time, D]`` for a grid ``n_time`` patches long: time positions
        ``0 .. n_time - 1`` (a shorter input: the first columns of the training grid), scaled into the training
        grid's span when longer and ``long_input="interpolate"`` (the continuous sin-cos function evaluated at
        the interpolated positions, i.e. an exact interpolation of the fixed table)."""
        dev = self.pos_embed.device
        t = torch.arange(n_time, device=dev, dtype=torch.float32)
        if self.long_input == "interpolate":  # branch-free in n_time (dynamic under export)
            last = torch.clamp(t[-1:], min=1.0)
            t = t * torch.clamp((self.grid_t - 1) / last, max=1.0)
        f = torch.arange(self.grid_f, device=dev, dtype=torch.float32)
        return sincos_positions(f, t, self.dim).to(self.pos_embed.dtype)

    def embed_patches(self, patches: Tensor, index: Tensor, n_time: int | None = None) -> Tensor:
        """Tokens of selected patches: ``patches [B, n, p*p]`` (pixels from :meth:`patchify`) at patch indices
        ``index [B, n]`` -> ``[B, n, D]`` = linear patch embedding + their positional embeddings.  The same
        weights as ``patch_embed`` (a stride-p conv is a linear map per patch)."""
        w = self.patch_embed.proj.weight
        tok = F.linear(patches, w.view(w.shape[0], -1), self.patch_embed.proj.bias)
        pos = self.pos_for(self.grid_t if n_time is None else n_time)
        return tok + pos[index]

    def encode_tokens(self, tokens: Tensor, all_layers: bool = False):
        """CLS + transformer blocks + final LayerNorm over ``tokens [B, n, D]`` -> ``[B, n, D]`` (CLS dropped);
        ``all_layers=True`` also returns every block's output (pre-norm, CLS dropped)."""
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        h = torch.cat([cls, tokens], dim=1)
        layers = []
        for blk in self.blocks_:
            h = blk(h)
            if all_layers:
                layers.append(h[:, 1:])
        out = self.norm(h)[:, 1:]
        return (out, layers) if all_layers else out

    # -- encoder interface ---------------------------------------------------------------------------------
    def _pad(self, x: Tensor) -> Tensor:
        self.check_input(x)
        if x.shape[2] != self.n_mels:
            raise ValueError(f"{self.name}: built for {self.n_mels} mel bins, got {x.shape[2]}")
        return F.pad(x, (0, (-x.shape[-1]) % self.patch_size))  # unconditional: no shape branch under export

    def _encode(self, x: Tensor, all_layers: bool):
        """Padded input -> (tokens [B, F', T', D], layers as [B, D, F', T'] maps)."""
        n_time = x.shape[-1] // self.patch_size
        tok = self.patch_embed(x) + self.pos_for(n_time)[None]
        out, layers = self.encode_tokens(tok, all_layers=True) if all_layers else (self.encode_tokens(tok), [])
        b = x.shape[0]
        grid = out.reshape(b, self.grid_f, n_time, self.dim)
        maps = [h.reshape(b, self.grid_f, n_time, self.dim).permute(0, 3, 1, 2) for h in layers]
        return grid, maps

    def _chunks(self, x: Tensor) -> tuple[Tensor, int]:
        """``[B, 1, F, T]`` (T a multiple of p, > n_frames) -> ``[B * k, 1, F, n_frames]`` zero-padded chunks."""
        n = self.train_frames
        k = math.ceil(x.shape[-1] / n)
        x = F.pad(x, (0, k * n - x.shape[-1]))
        b = x.shape[0]
        return x.reshape(b, 1, self.n_mels, k, n).permute(0, 3, 1, 2, 4).reshape(b * k, 1, self.n_mels, n), k

    def _run(self, x: Tensor, all_layers: bool):
        x = self._pad(x)
        t_out = x.shape[-1] // self.patch_size
        if self.long_input != "chunk" or x.shape[-1] <= self.train_frames:
            return self._encode(x, all_layers)
        b = x.shape[0]
        xc, k = self._chunks(x)
        grid, maps = self._encode(xc, all_layers)  # [B*k, F', Tc, D]
        grid = grid.reshape(b, k, self.grid_f, self.grid_t, self.dim).permute(0, 2, 1, 3, 4)
        grid = grid.reshape(b, self.grid_f, k * self.grid_t, self.dim)[:, :, :t_out]
        maps = [m.reshape(b, k, self.dim, self.grid_f, self.grid_t).permute(0, 2, 3, 1, 4)
                .reshape(b, self.dim, self.grid_f, k * self.grid_t)[..., :t_out] for m in maps]
        return grid, maps

    @staticmethod
    def _grid_frames(grid: Tensor) -> Tensor:
        b, f, t, d = grid.shape  # [B, F', T', D]
        return grid.permute(0, 2, 1, 3).reshape(b, t, f * d)  # frequency patches concatenated per time step

    def frames(self, x: Tensor) -> Tensor:
        return self._grid_frames(self._run(x, all_layers=False)[0])

    def pool_frames(self, frames: Tensor) -> Tensor:
        return frames.mean(dim=1)

    def blocks(self, x: Tensor) -> list[Tensor]:
        """Every transformer layer's output ``[B, D, F/16, T'/16]`` (before the final LayerNorm)."""
        return self._run(x, all_layers=True)[1]

    def embed_and_blocks(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """One transformer pass for both (the frames come from the final LayerNorm, not from a block)."""
        grid, maps = self._run(x, all_layers=True)
        return self.pool_frames(self._grid_frames(grid)), maps


@ENCODERS.register("vit_tiny")
class ViTTiny(ViTEncoder):
    """ViT-Tiny: 192-d, 12 layers, 3 heads (DeiT, Touvron et al. 2021, Table 1: 5M)."""

    def __init__(self, n_mels: int = 80, n_frames: int = 608, patch_size: int = 16, drop_path_rate: float = 0.0,
                 long_input: str = "interpolate", depth: int = 12) -> None:
        super().__init__(n_mels, n_frames, patch_size, 192, depth, 3, 4.0, drop_path_rate, long_input)


@ENCODERS.register("vit_small")
class ViTSmall(ViTEncoder):
    """ViT-Small: 384-d, 12 layers, 6 heads (DeiT Table 1: 22M)."""

    def __init__(self, n_mels: int = 80, n_frames: int = 608, patch_size: int = 16, drop_path_rate: float = 0.0,
                 long_input: str = "interpolate") -> None:
        super().__init__(n_mels, n_frames, patch_size, 384, 12, 6, 4.0, drop_path_rate, long_input)


@ENCODERS.register("vit_base")
class ViTBase(ViTEncoder):
    """ViT-Base: 768-d, 12 layers, 12 heads (Dosovitskiy et al. 2021, Table 1: 86M), the encoder of Audio-MAE
    (Sec. 4.1) and M2D (Sec. 4.1)."""

    def __init__(self, n_mels: int = 80, n_frames: int = 608, patch_size: int = 16, drop_path_rate: float = 0.0,
                 long_input: str = "interpolate") -> None:
        super().__init__(n_mels, n_frames, patch_size, 768, 12, 12, 4.0, drop_path_rate, long_input)
