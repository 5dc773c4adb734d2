"""Name -> class registries for encoders and decoders (``@ENCODERS.register("mobile")``).

Encoders are discovered from ``models/encoders/`` and decoders from ``models/decoders/`` (one module
each; see :class:`shards.registry.Registry`).
"""
from __future__ import annotations

from typing import Any

from shards.registry import Registry

from .base import Encoder

ENCODERS: Registry[type[Encoder]] = Registry("encoder", package="models.encoders")
DECODERS: Registry[type] = Registry("decoder", package="models.decoders")


def build_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build a registered encoder; ``build_encoder(e.name, **e.config())`` rebuilds ``e``."""
    return ENCODERS.get(name)(**kwargs)
