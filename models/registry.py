"""Name -> class registries for encoders and decoders (``@register_encoder("mobile")``)."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from .base import Encoder

ENCODERS: dict[str, type[Encoder]] = {}
DECODERS: dict[str, type] = {}

E = TypeVar("E", bound=type)


def register_encoder(name: str) -> Callable[[E], E]:
    """Class decorator: register an :class:`Encoder` subclass under ``name``."""

    def deco(cls: E) -> E:
        if name in ENCODERS:
            raise KeyError(f"encoder {name!r} registered twice")
        cls.name = name  # type: ignore[attr-defined]
        ENCODERS[name] = cls  # type: ignore[assignment]
        return cls

    return deco


def register_decoder(name: str) -> Callable[[E], E]:
    def deco(cls: E) -> E:
        if name in DECODERS:
            raise KeyError(f"decoder {name!r} registered twice")
        DECODERS[name] = cls
        return cls

    return deco


def build_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build a registered encoder; ``build_encoder(e.name, **e.config())`` rebuilds ``e``."""
    try:
        cls = ENCODERS[name]
    except KeyError:
        raise KeyError(f"unknown encoder {name!r}; known: {sorted(ENCODERS)}") from None
    return cls(**kwargs)
