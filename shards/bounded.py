"""Files from outside read with a size bound: ``/dev/zero`` or a 50 GB "CSV" cannot exhaust memory.

:func:`open_bounded` is a drop-in for ``open(path, ...)`` (text or binary, streamed): reading past
``limit`` bytes raises :class:`TooLarge` (a ``ValueError``: one line at the CLI boundary) naming the
file and the bound.  The bound counts bytes read, not ``st_size``, so character devices, FIFOs and
files that grow while read are covered.  The limits below are the documented ceilings
(docs/robustness-ingest.md); each is far above what a real file of that kind needs.
"""
from __future__ import annotations

import io
import json
from typing import IO, Any, AnyStr, Iterator

__all__ = ["TooLarge", "open_bounded", "read_bytes_bounded", "load_json_bounded", "bounded_lines", "MAX_LINE_BYTES",
           "MAX_MANIFEST_BYTES", "MAX_RECORD_BYTES", "MAX_TABLE_BYTES", "MAX_LEDGER_BYTES"]

MAX_MANIFEST_BYTES = 256 << 20  # manifest.json: ~100 bytes per shard + labels; 1 M shards fit
MAX_RECORD_BYTES = 256 << 20  # one .parts/<shard>.json sidecar (keys + failures of one shard)
MAX_LINE_BYTES = 1 << 20  # one line of a CSV or JSON-lines file (a real row is < 10 KB)
MAX_TABLE_BYTES = 1 << 30  # CSV / TSV tables (labels, AudioSet segments ~160 MB, FSD50K ground truth)
MAX_LEDGER_BYTES = 4 << 30  # one AudioSet ledger file (jsonl, one line per attempt)


class TooLarge(ValueError):
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
            raise TooLarge(f"{self._name}: {self._what} is larger than {self._limit:,} bytes; not read")
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


def read_bytes_bounded(path: str, limit: int, what: str = "file") -> bytes:
    """The whole file, refused (:class:`TooLarge`) when larger than ``limit``."""
    with open_bounded(path, limit, what, "rb") as f:
        return f.read()


def load_json_bounded(path: str, limit: int, what: str = "JSON file") -> Any:
    """``json.loads`` of the file, refused when larger than ``limit`` (``json.JSONDecodeError`` as usual)."""
    return json.loads(read_bytes_bounded(path, limit, what))


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
