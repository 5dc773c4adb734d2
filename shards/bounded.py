"""Files from outside read with a size bound: ``/dev/zero`` or a 50 GB "CSV" cannot exhaust memory.

:func:`open_bounded` is a drop-in for ``open(path, ...)`` (text or binary, streamed): reading past
``limit`` bytes raises :class:`TooLarge` (a ``ValueError``: one line at the CLI boundary) naming the
file and the bound.  The bound counts bytes read, not ``st_size``, so character devices, FIFOs and
files that grow while read are covered.  The limits below are the documented ceilings
(docs/robustness-ingest.md); each is far above what a real file of that kind needs.

Text, YAML and JSON from outside (configs, ``--hp`` values, run files) go through
:func:`read_text_bounded`, :func:`parse_yaml_bounded` / :func:`load_yaml_bounded` (safe YAML: no Python
tags, at most ``MAX_YAML_NODES`` nodes once aliases are expanded, so an alias bomb is refused in
bounded time and memory) and :func:`parse_json_bounded` / :func:`load_json_bounded`.  Every refusal is
a :class:`BoundError` (``shards.cli_types``; a ``ValueError``) whose ``str`` is one line.
"""
from __future__ import annotations

import io
import json
from typing import IO, Any, AnyStr, Iterator

import yaml

from .cli_types import BoundError

__all__ = ["BoundError", "TooLarge", "open_bounded", "read_bytes_bounded", "read_text_bounded", "load_json_bounded",
           "parse_json_bounded", "parse_yaml_bounded", "load_yaml_bounded", "bounded_lines", "human_bytes",
           "MAX_LINE_BYTES", "MAX_MANIFEST_BYTES", "MAX_RECORD_BYTES", "MAX_TABLE_BYTES", "MAX_LEDGER_BYTES",
           "MAX_TEXT_BYTES", "MAX_YAML_NODES"]

MAX_TEXT_BYTES = 1 << 20  # configs, YAML, --hp values, run files: 1 MiB is far beyond any real one
MAX_YAML_NODES = 100_000  # scalars + collections after aliases are expanded (each use of an alias counts)

MAX_MANIFEST_BYTES = 256 << 20  # manifest.json: ~100 bytes per shard + labels; 1 M shards fit
MAX_RECORD_BYTES = 256 << 20  # one .parts/<shard>.json sidecar (keys + failures of one shard)
MAX_LINE_BYTES = 1 << 20  # one line of a CSV or JSON-lines file (a real row is < 10 KB)
MAX_TABLE_BYTES = 1 << 30  # CSV / TSV tables (labels, AudioSet segments ~160 MB, FSD50K ground truth)
MAX_LEDGER_BYTES = 4 << 30  # one AudioSet ledger file (jsonl, one line per attempt)


class TooLarge(BoundError):
    """A file from outside is larger than its bound; ``str(err)`` is the one-line reason."""


class _BoundedRaw(io.RawIOBase):
    def __init__(self, f: io.FileIO, limit: int, name: str, what: str) -> None:
        self._f, self._left, self._limit, self._name, self._what = f, limit, limit, name, what
        self.name = name

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        want = min(len(view), self._left + 1)  # one byte more than allowed tells "too large" from "exactly at the bound"
        n = self._f.readinto(view[:want]) or 0
        self._left -= n
        if self._left < 0:
            raise TooLarge(f"{self._name}: {self._what} is larger than {self._limit:,} bytes ({human_bytes(self._limit)}); not read")
        return n

    def close(self) -> None:
        try:
            self._f.close()
        finally:
            super().close()


def open_bounded(path: str, limit: int, what: str = "file", mode: str = "r", **kw: Any) -> IO[Any]:
    """``open(path, mode, **kw)`` for reading, raising :class:`TooLarge` once more than ``limit`` bytes
    were read.  ``mode`` is ``"r"`` (text; ``encoding``/``newline``/``errors`` as for ``open``) or ``"rb"``."""
    if mode not in ("r", "rb", "rt"):
        raise ValueError(f"open_bounded: read modes only, got {mode!r}")
    raw = _BoundedRaw(open(path, "rb", buffering=0), int(limit), str(path), what)  # noqa: SIM115 - returned
    buf = io.BufferedReader(raw, buffer_size=1 << 16)
    if mode == "rb":
        return buf
    kw.setdefault("encoding", "utf-8")
    return io.TextIOWrapper(buf, **kw)


def read_bytes_bounded(path: str, limit: int = MAX_TEXT_BYTES, what: str = "file") -> bytes:
    """The whole file, refused (:class:`TooLarge`) when larger than ``limit``."""
    with open_bounded(path, limit, what, "rb") as f:
        return f.read()


def bounded_lines(f: IO[AnyStr], what: str = "file", max_line: int = MAX_LINE_BYTES,
                  name: str | None = None) -> Iterator[AnyStr]:
    """The lines of ``f`` (text or binary), each read with a bound: a line longer than ``max_line``
    characters (``/dev/zero`` has no newline at all) raises :class:`TooLarge` at once, before it is held.
    A drop-in for ``for line in f`` and for the iterable of ``csv.reader``."""
    where = name or getattr(f, "name", what)
    n = 0
    while True:
        line = f.readline(max_line + 1)
        if not line:
            return
        n += 1
        if len(line) > max_line:
            raise TooLarge(f"{where}:{n}: {what} line longer than {max_line:,} characters; not read")
        yield line


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BoundError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_text_bounded(path: str, limit: int = MAX_TEXT_BYTES, what: str = "text file") -> str:
    """UTF-8 text of ``path`` (a leading BOM dropped), at most ``limit`` bytes; :class:`BoundError` otherwise."""
    return _decode(read_bytes_bounded(path, limit, what), path)


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts every node as often as aliases make it appear, and refuses a
    document whose expanded size passes ``max_nodes`` while composing it (before any object is built)."""

    max_nodes = MAX_YAML_NODES
    where = "<yaml>"

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor
            target = self.anchors.get(anchor)
            if target is not None and id(target) not in self._sizes:
                raise BoundError(f"{self.where}: YAML alias *{anchor} refers to a node that contains it (a cycle)")
        node = super().compose_node(parent, index)
        if id(node) not in self._sizes:
            if isinstance(node, yaml.SequenceNode):
                size = 1 + sum(self._sizes[id(c)] for c in node.value)
            elif isinstance(node, yaml.MappingNode):
                size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
            else:
                size = 1
            if size > self.max_nodes:
                raise BoundError(f"{self.where}: YAML expands to more than {self.max_nodes} nodes once its aliases "
                                 f"are resolved (an alias bomb?); refusing it")
            self._sizes[id(node)] = size
        return node


def parse_yaml_bounded(text: str, where: str, max_nodes: int = MAX_YAML_NODES) -> Any:
    """Safe YAML from ``text``; ``where`` names it in messages (``cfg.yaml``, ``--hp lr``).  Syntax errors
    become ``"<where>:<line>:<col>: invalid YAML (<problem>)"``; tags such as ``!!python/object`` are
    refused (safe loader), and so are cycles and documents that expand past ``max_nodes``."""
    loader = _BoundedLoader(text)
    loader.max_nodes, loader.where = max_nodes, where
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise BoundError(f"{at}: invalid YAML ({what})") from None
    except RecursionError:
        raise BoundError(f"{where}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml_bounded(path: str, limit: int = MAX_TEXT_BYTES, max_nodes: int = MAX_YAML_NODES) -> Any:
    """Safe YAML from file ``path``: at most ``limit`` bytes and ``max_nodes`` expanded nodes."""
    return parse_yaml_bounded(read_text_bounded(path, limit, "YAML file"), path, max_nodes)


def parse_json_bounded(data: bytes | str, where: str) -> Any:
    """JSON from ``data``; one-line :class:`BoundError` for bad UTF-8, bad JSON or too deep nesting."""
    text = _decode(data, where) if isinstance(data, bytes) else data
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BoundError(f"{where}: invalid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise BoundError(f"{where}: JSON nested too deeply") from None


def load_json_bounded(path: str, limit: int = MAX_TEXT_BYTES, what: str = "JSON file") -> Any:
    """JSON from file ``path``, refused (:class:`TooLarge`) when larger than ``limit`` bytes."""
    return parse_json_bounded(read_bytes_bounded(path, limit, what), path)
