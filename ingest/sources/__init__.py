"""Registry of ingest sources (folder, demo, audioset, fsd50k): name -> CLI hooks."""
from __future__ import annotations

from typing import Callable

SOURCES: dict[str, "SourceSpec"] = {}


class SourceSpec:
    """How a source plugs into ``python -m ingest``: ``add_args(parser)`` and ``run(args) -> Source``."""

    def __init__(self, name: str, help: str, add_args: Callable, run: Callable):
        self.name, self.help, self.add_args, self.run = name, help, add_args, run


def register_source(name: str, help: str):
    def deco(cls_or_mod):
        SOURCES[name] = SourceSpec(name, help, cls_or_mod.add_args, cls_or_mod.run)
        return cls_or_mod
    return deco
