"""Name -> class registries for encoders and decoders (``@register_encoder("mobile")``).

Encoders are discovered from ``models/encoders/`` (one module each; see :class:`shards.registry.Registry`).
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from shards.registry import Registry

from .base import Encoder

ENCODERS: Registry[type[Encoder]] = Registry("encoder", package="models.encoders")
DECODERS: Registry[type] = Registry("decoder")

E = TypeVar("E", bound=type)


def register_encoder(name: str) -> Callable[[E], E]:
    """Class decorator: register an :class:`Encoder` subclass under ``name``."""

    def deco(cls: E) -> E:
        ENCODERS.add(name, cls)  # type: ignore[arg-type]
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return deco


def register_decoder(name: str) -> Callable[[E], E]:
    """Class decorator: register a decoder class under ``name``."""
    return DECODERS.register(name)


def build_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build a registered encoder; ``build_encoder(e.name, **e.config())`` rebuilds ``e``."""
    return ENCODERS.get(name)(**kwargs)
