"""Shared head / projector builders of the objectives (papers cited per builder)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = [
    "mlp",
    "barlow_projector",
    "byol_mlp",
    "simclr_projector",
    "ColaHead",
    "Bilinear",
]


def mlp(
    in_dim: int,
    hidden: list[int] | tuple[int, ...],
    out_dim: int,
    *,
    norm: str | None = "bn",
    bias: bool = True,
    dropout_in: float = 0.0,
) -> nn.Sequential:
    """``[Dropout] -> (Linear -> Norm -> ReLU) x len(hidden) -> Linear``.

    ``norm``: ``"bn"`` (BatchNorm1d), ``"ln"`` (LayerNorm) or ``None``. Under DDP the trainer
    converts BatchNorm1d to SyncBatchNorm so projector statistics cover the global batch.
    """
    layers: list[nn.Module] = []
    if dropout_in > 0:
        layers.append(nn.Dropout(dropout_in))
    d = in_dim
    for h in hidden:
        layers.append(nn.Linear(d, h, bias=bias))
        if norm == "bn":
            layers.append(nn.BatchNorm1d(h))
        elif norm == "ln":
            layers.append(nn.LayerNorm(h))
        elif norm is not None:
            raise ValueError(f"unknown norm {norm!r}")
        layers.append(nn.ReLU(inplace=True))
        d = h
    layers.append(nn.Linear(d, out_dim, bias=bias))
    return nn.Sequential(*layers)


def barlow_projector(in_dim: int, units: int = 8192, *, norm: str | None = "bn", dropout: float = 0.0) -> nn.Sequential:
    """DeLoRes projector (Ghosh et al. 2022, Sec. III-A, "in line with" Zbontar et al. 2021):
    three linear layers of ``units`` outputs, BatchNorm1d + ReLU after the first two, a dropout
    between encoder output and projector. Linear layers carry no bias (Barlow Twins reference
    implementation). The final BatchNorm ("to make them zero mean and unit variance") is the
    affine-free standardisation inside :func:`losses.barlow_twins_loss`, taken over the global
    batch."""
    return mlp(in_dim, [units, units], units, norm=norm, bias=False, dropout_in=dropout)


def byol_mlp(in_dim: int, hidden: int = 4096, out_dim: int = 256, *, norm: str | None = "bn") -> nn.Sequential:
    """BYOL(-A) projector / predictor (Niizumi et al. 2021, Sec. IV-A-3): Linear(4096) -> BN ->
    ReLU -> Linear(256)."""
    return mlp(in_dim, [hidden], out_dim, norm=norm)


def simclr_projector(
    in_dim: int, hidden: int = 4096, n_hidden: int = 3, out_dim: int = 128, *, norm: str | None = "bn"
) -> nn.Sequential:
    """SimCLR projector of Wang et al. 2022 (Sec. 3): "a MLP with 3 hidden layers of size 4096".
    Output size (128) and BN in the hidden layers follow Chen et al. 2020 (not stated in the paper)."""
    return mlp(in_dim, [hidden] * n_hidden, out_dim, norm=norm)


class ColaHead(nn.Module):
    """Shallow head ``g`` of COLA / Kuroyanagi & Komatsu 2022 (Sec. 3.2): a 512-unit fully
    connected layer followed by LayerNorm and tanh. Applied on the last dim, so it maps clip
    ``[B, d]`` and frame ``[B, T, d]`` embeddings alike."""

    def __init__(self, in_dim: int, dim: int = 512):
        super().__init__()
        self.fc = nn.Linear(in_dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.norm(self.fc(h)))


class Bilinear(nn.Module):
    """Bilinear similarity parameter ``W`` of ``s(x, x') = z^T W z'`` (Kuroyanagi & Komatsu 2022,
    eq. 1). Initialised like a linear layer's weight (uniform +-1/sqrt(dim))."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        bound = 1.0 / math.sqrt(dim)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, z: torch.Tensor, z_prime: torch.Tensor) -> torch.Tensor:
        return z @ self.weight @ z_prime.transpose(-1, -2)
