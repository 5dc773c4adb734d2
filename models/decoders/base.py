"""The decoder base class and ``build_decoder`` (which decoder an encoder gets)."""
from __future__ import annotations

from typing import Any

from torch import nn

from ..base import Encoder
from ..registry import DECODERS


class Decoder(nn.Module):
    """``forward(z [B, in_dim]) -> [B, out_slices, n_mels, n_frames]``."""

    in_dim: int
    n_mels: int
    n_frames: int
    out_slices: int

    def _set(self, in_dim: int, n_mels: int, n_frames: int, out_slices: int) -> None:
        self.in_dim, self.n_mels, self.n_frames, self.out_slices = in_dim, n_mels, n_frames, out_slices


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
