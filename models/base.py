"""The `Encoder` interface shared by every encoder (see docs/contracts.md, "Encoders").

An encoder maps a log-mel batch ``[B, 1, F, T]`` (10 ms hop) to

* ``forward(x) -> [B, embedding_dim]``: one clip embedding,
* ``frames(x) -> [B, T', frame_dim]``: frame embeddings at ``frame_rate`` frames per second,
* ``blocks(x) -> list[[B, C_i, F_i, T_i]]``: intermediate block outputs (DeLoRes-M, probing).

Every encoder defines ``forward(x) == pool_frames(frames(x))``: the clip embedding is a pooling
(plus, for ``mobile``, the final FC) of the frame embeddings, so frame- and clip-level objectives
see the same features.

``config()`` returns the constructor kwargs (defaults filled in), so
``build_encoder(enc.name, **enc.config())`` rebuilds an identical architecture.  The kwargs are
captured automatically when the outermost ``__init__`` of a subclass returns.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

HOP_S = 0.010  # every frontend preset uses a 10 ms hop (shards/frontend.py)


class Encoder(nn.Module):
    """Base class of all encoders; subclasses set the attributes below in ``__init__``."""

    name: ClassVar[str] = ""
    embedding_dim: int
    frame_dim: int
    n_mels: int
    #: input frames per output frame of ``frames()``
    time_stride: int = 1
    #: the smallest number of input frames the architecture accepts
    min_frames: int = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        sig = inspect.signature(init)

        @functools.wraps(init)
        def wrapped(self: "Encoder", *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            if type(self).__init__ is wrapped:  # only the outermost __init__ records
                bound = sig.bind(self, *args, **kw)
                bound.apply_defaults()
                cfg = {k: v for k, v in bound.arguments.items() if k != "self"}
                for k, v in list(cfg.items()):
                    if isinstance(v, tuple):
                        cfg[k] = list(v)
                object.__setattr__(self, "_config", cfg)

        cls.__init__ = wrapped  # type: ignore[method-assign,assignment]

    # -- interface -------------------------------------------------------------------------
    @property
    def frame_rate(self) -> float:
        """Frames of ``frames()`` per second of input (10 ms hop)."""
        return 1.0 / (HOP_S * self.time_stride)

    def config(self) -> dict[str, Any]:
        """Constructor kwargs that rebuild this encoder with ``build_encoder(name, **config())``."""
        return dict(getattr(self, "_config", {}))

    def frames(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pool_frames(self, frames: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Clip embedding ``[B, d]`` from frame embeddings ``[B, T', frame_dim]``."""
        raise NotImplementedError

    def blocks(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def frames_from_blocks(self, blocks: list[Tensor]) -> Tensor:  # pragma: no cover - abstract
        """``frames(x)`` from ``blocks(x)`` without running the trunk again (``frames`` is built on it)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.pool_frames(self.frames(x))

    def embed_and_blocks(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``(forward(x), blocks(x))`` from one pass of the trunk: an objective that needs both per view
        (DeLoRes-M, Ghosh et al. 2022 Sec. III-B-4) pays for one forward and one backward, not two."""
        blocks = self.blocks(x)
        return self.pool_frames(self.frames_from_blocks(blocks)), blocks

    # -- helpers ---------------------------------------------------------------------------
    def n_frames_out(self, n_frames: int) -> int:
        """Number of frames ``frames()`` returns for ``n_frames`` input frames (by running it)."""
        with torch.no_grad():
            was = self.training
            self.eval()
            out = self.frames(torch.zeros(1, 1, self.n_mels, n_frames))
            self.train(was)
        return int(out.shape[1])

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"{self.name}: expected a log-mel batch [B, 1, F, T], got {tuple(x.shape)}")
        if x.shape[-1] < self.min_frames:
            raise ValueError(f"{self.name}: needs at least {self.min_frames} frames, got {x.shape[-1]}")

    def extra_repr(self) -> str:
        return f"name={self.name!r}, embedding_dim={self.embedding_dim}, frame_dim={self.frame_dim}, " \
               f"frame_rate={self.frame_rate:g}, n_mels={self.n_mels}"
