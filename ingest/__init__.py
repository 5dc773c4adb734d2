"""melstream ingest package: sources -> decode -> frontend -> shards.

Public names for other packages: :class:`Item` and :class:`SkipItem` (to write a source) and
:func:`decode_to_mels` (the log-mels of a source through a given frontend, as shards).
"""
from .engine import Item, SkipItem, Source
from .mels import decode_to_mels

__all__ = ["Item", "SkipItem", "Source", "decode_to_mels"]
