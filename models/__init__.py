"""melstream models: encoders (``build_encoder``/``ENCODERS``) and decoders (``build_decoder``).

See docs/contracts.md ("Encoders") for the interface and docs/models.md for each architecture.
``models.objectives`` is a separate subpackage and is not imported here.
"""
from . import memory_format
from .base import Encoder
from .decoders import Decoder, MLPDecoder, MobileDecoder, build_decoder
from .registry import DECODERS, ENCODERS, build_encoder

__all__ = [
    "Encoder", "ENCODERS", "DECODERS", "build_encoder", "build_decoder", "Decoder", "MobileDecoder", "MLPDecoder", "memory_format",
]
