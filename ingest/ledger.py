"""Per-clip download ledger: what happened to every (video ID, start) and when it was checked.

Safe with many writers: every process appends to its *own* file ``<dir>/<host>-<pid>-<n>.jsonl``
(opened ``O_APPEND``, one JSON line per ``write()``, ``fsync`` after each), so worker processes,
the jobs of an array and jobs on other hosts sharing a network file system never write the same
file.  Readers merge all files; for each key the entry with the latest ``t`` wins, and a torn
last line (a process killed mid-write) is ignored.  :func:`consolidate` writes the merged view
as one sorted ``ledger.jsonl`` (atomically) for publication next to the shards.

An entry::

    {"key": "-0DdlOuIFUI_30000", "id": "-0DdlOuIFUI", "start": 30.0, "end": 40.0, "split": "eval",
     "status": "ok" | "permanent" | "transient", "reason": "private", "message": "...",
     "attempts": 3, "checked": "2025-01-31", "t": 1738300000.123, "mode": "range" | "full",
     "seconds": 10.0}
"""
from __future__ import annotations

import glob
import itertools
import json
import os
import socket
import threading
import time
from typing import Any, Iterable

from shards.atomic import atomic_write_bytes
from shards.bounded import MAX_LEDGER_BYTES, bounded_lines, open_bounded

STATUSES = ("ok", "permanent", "transient")
_counter = itertools.count()
_lock = threading.Lock()


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


class LedgerWriter:
    """Appends entries to this process's own ledger file (created on first write)."""

    def __init__(self, directory: str):
        self.directory = directory
        self._fd: int | None = None
        self._pid: int | None = None
        self.path: str | None = None

    def _open(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child must not share the parent's file
            os.makedirs(self.directory, exist_ok=True)
            host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40] or "host"
            with _lock:
                n = next(_counter)
            self.path = os.path.join(self.directory, f"{host}-{os.getpid()}-{n}.jsonl")
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        return self._fd

    def append(self, entry: dict[str, Any]) -> None:
        if entry.get("status") not in STATUSES:
            raise ValueError(f"ledger status must be one of {STATUSES}, got {entry.get('status')!r}")
        e = {"checked": today(), "t": round(time.time(), 3), **entry}
        line = (json.dumps(e, sort_keys=True, ensure_ascii=True) + "\n").encode()
        fd = self._open()
        view = memoryview(line)
        while view:  # a regular-file write is whole in practice; loop for the pathological case
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __getstate__(self) -> dict:  # picklable for worker processes: they open their own file
        return {"directory": self.directory, "_fd": None, "_pid": None, "path": None}


def iter_entries(directory: str) -> Iterable[dict[str, Any]]:
    """Every well-formed entry of every ledger file in ``directory`` (torn lines skipped)."""
    for p in sorted(glob.glob(os.path.join(directory, "*.jsonl"))):
        try:
            with open_bounded(p, MAX_LEDGER_BYTES, "ledger", "rb") as f:
                for line in bounded_lines(f, "ledger", name=p):
                    if not line.endswith(b"\n"):
                        continue  # torn last line of a killed process
                    try:
                        e = json.loads(line)
                    except ValueError:  # not JSON, not UTF-8
                        continue
                    if isinstance(e, dict) and isinstance(e.get("key"), str) and e.get("status") in STATUSES:
                        yield e
        except OSError:
            continue


def load(directory: str, statuses: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """Merged ledger: key -> latest entry (by ``t``); with ``statuses``, only keys whose latest
    entry has one of them (the others are tracked by time alone, to keep memory low)."""
    latest: dict[str, tuple[float, dict[str, Any] | None]] = {}
    for e in iter_entries(directory):
        t = float(e.get("t", 0) or 0)
        prev = latest.get(e["key"])
        if prev is None or t >= prev[0]:
            latest[e["key"]] = (t, e if statuses is None or e["status"] in statuses else None)
    return {k: e for k, (_, e) in latest.items() if e is not None}


def consolidate(directory: str, path: str) -> dict[str, dict[str, Any]]:
    """Write the merged ledger, sorted by key, to ``path`` (atomic); returns it."""
    merged = load(directory)
    data = "".join(json.dumps(merged[k], sort_keys=True) + "\n" for k in sorted(merged)).encode()
    atomic_write_bytes(path, data)
    return merged
