"""Registry of ingest sources (folder, demo, audioset, fsd50k): name -> CLI hooks.

Every module of this folder is imported on first lookup in :data:`SOURCES` (one file per source).
A source registers one class::

    @SOURCES.register("mysource")
    class MySourceSpec(SourceSpec):
        help = "one line for python -m ingest --help"
        add_args = staticmethod(add_args)        # (parser) -> None: the source's own flags

        @staticmethod
        def run(a: argparse.Namespace) -> MySource:   # the parsed flags -> a Source (ingest.engine)
            return MySource(a.root)
"""
from __future__ import annotations

import argparse
from typing import Any, ClassVar

from shards.registry import Registry

__all__ = ["SOURCES", "SourceSpec"]


class SourceSpec:
    """How a source plugs into ``python -m ingest``: ``help``, ``add_args(parser)`` and ``run(args) -> Source``.
    ``name`` is set by ``@SOURCES.register(name)``."""

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""

    @staticmethod
    def add_args(p: argparse.ArgumentParser) -> None:
        """Add the source's own flags to its subcommand's parser."""

    @staticmethod
    def run(a: argparse.Namespace) -> Any:
        """The :class:`ingest.engine.Source` for the parsed flags."""
        raise NotImplementedError


SOURCES: Registry[type[SourceSpec]] = Registry("source", package="ingest.sources")
