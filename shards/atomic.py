"""Atomic file writes: write a temp file in the same directory, fsync, rename."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it; restored at once (at import, before any thread)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_read_umask()  # what open() would give a new file (mkstemp gives 0600)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``path`` through a temp file in its directory (fsync, rename), with the mode a plain
    ``open`` would give it (so manifests and ``.parts`` records are as readable as the shards)."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())


def atomic_write_lines(path: str, rows: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
