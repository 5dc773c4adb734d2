"""Registry of ingest sources (folder, demo, audioset, fsd50k): name -> CLI hooks.

Every module of this folder is imported on first lookup in :data:`SOURCES` (one file per source)."""
from __future__ import annotations

from typing import Any, Callable

from shards.registry import Registry

SOURCES: Registry["SourceSpec"] = Registry("source", package="ingest.sources")


class SourceSpec:
    """How a source plugs into ``python -m ingest``: ``add_args(parser)`` and ``run(args) -> Source``."""

    def __init__(self, name: str, help: str, add_args: Callable, run: Callable):
        self.name, self.help, self.add_args, self.run = name, help, add_args, run


def register_source(name: str, help: str) -> Callable[[Any], Any]:
    """Decorator for a class or module with ``add_args`` and ``run``; refuses a name twice."""
    def deco(cls_or_mod: Any) -> Any:
        SOURCES.add(name, SourceSpec(name, help, cls_or_mod.add_args, cls_or_mod.run))
        return cls_or_mod
    return deco
