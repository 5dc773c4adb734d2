"""Trusting the eval caches: every entry is checked against its manifest before use, one writer per entry.

A cache entry is one log-mel dir (``mels/<task>/<...>/``) or one embedding dir
(``emb/<model>/<task>/<...>/``).  Its manifest is read with a size bound (:data:`MAX_MANIFEST_BYTES`)
and each file it lists is checked for size and sha256 (and, when read, for sample counts and shapes),
as ``python -m shards verify`` checks shards.  A mismatch is a :class:`CacheCorrupt` naming the file;
the callers in ``eval/cache.py`` and ``eval/embed.py`` log it, discard what is bad and rebuild it.

One writer per entry: :func:`entry_lock` holds a :class:`shards.lock.DirLock` under
``<cache>/locks/<entry path>/`` while an entry is checked, (re)built and read.  A second ``eval run``
that needs the same entry waits for it (logging the holder), then checks and uses the finished entry;
after :func:`lock_wait_seconds` (``$MELSTREAM_CACHE_WAIT``, default 6 h) it stops with one line.
A lock left by a dead process is taken over (see ``shards/lock.py``).
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import time
from typing import Any, Iterator, Optional

from shards.lock import DirLock, LockHeld
from shards.writer import sha256_file

log = logging.getLogger("melstream.eval")

MAX_MANIFEST_BYTES = 16 << 20  # a cache manifest lists shards, not clips: megabytes at most
DEFAULT_WAIT_S = 6 * 3600.0
MAX_WAIT_S = 7 * 24 * 3600.0


class CacheCorrupt(ValueError):
    """A cache file does not match its manifest (or cannot be read); ``path`` names it."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


class CacheBusy(RuntimeError):
    """Another process held a cache entry for longer than the wait limit."""


def read_json_bounded(path: str, limit: int = MAX_MANIFEST_BYTES) -> Any:
    """``json.load`` of ``path``, refusing files over ``limit`` bytes (``/dev/zero`` included)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise CacheCorrupt(path, f"unreadable ({e.strerror or e})") from None
    if len(data) > limit:
        raise CacheCorrupt(path, f"larger than {limit} bytes")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CacheCorrupt(path, f"invalid JSON ({e})") from None


def check_file(path: str, entry: dict[str, Any]) -> None:
    """``path`` exists with the manifest's ``bytes`` and ``sha256``; else :class:`CacheCorrupt`."""
    want_bytes, want_sha = entry.get("bytes"), entry.get("sha256")
    if not isinstance(want_bytes, int) or not isinstance(want_sha, str):
        raise CacheCorrupt(path, "its manifest entry has no bytes/sha256")
    try:
        size = os.path.getsize(path)
    except OSError:
        raise CacheCorrupt(path, "missing") from None
    if size != want_bytes:
        raise CacheCorrupt(path, f"{size} bytes, manifest says {want_bytes} (truncated or replaced)")
    if sha256_file(path) != want_sha:
        raise CacheCorrupt(path, "sha256 does not match the manifest (bytes changed)")


def remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def lock_wait_seconds() -> float:
    """How long to wait for another process's cache entry: ``$MELSTREAM_CACHE_WAIT`` seconds (0..7 days)."""
    raw = os.environ.get("MELSTREAM_CACHE_WAIT", "")
    if not raw.strip():
        return DEFAULT_WAIT_S
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"MELSTREAM_CACHE_WAIT={raw!r}: give seconds, e.g. 3600") from None
    if not (math.isfinite(v) and 0 <= v <= MAX_WAIT_S):
        raise ValueError(f"MELSTREAM_CACHE_WAIT={raw!r}: must be between 0 and {MAX_WAIT_S:.0f} seconds")
    return v


def lock_dir(cache_dir: str, entry: str) -> str:
    """Where the lock of ``entry`` lives: ``<cache>/locks/<entry relative to the cache>``."""
    rel = os.path.relpath(os.path.abspath(entry), os.path.abspath(cache_dir))
    if rel.startswith(".."):
        raise ValueError(f"cache entry {entry} is outside the cache {cache_dir}")
    return os.path.join(cache_dir, "locks", rel)


@contextlib.contextmanager
def entry_lock(cache_dir: str, entry: str, what: str, wait_s: Optional[float] = None) -> Iterator[None]:
    """Hold the one-writer lock of cache ``entry`` (waiting up to ``wait_s`` for another holder).

    A cache that this user may only read (no lock can be created) is used without a lock."""
    limit = lock_wait_seconds() if wait_s is None else wait_s
    lock = DirLock(lock_dir(cache_dir, entry), what, hint="waiting for it")
    t0 = time.monotonic()
    next_note, poll = t0, 0.1
    while True:
        try:
            lock.acquire()
            break
        except LockHeld as e:
            now = time.monotonic()
            if now - t0 >= limit:
                raise CacheBusy(f"{e}; gave up after {limit:.0f} s (MELSTREAM_CACHE_WAIT)") from None
            if now >= next_note:
                log.warning("%s (entry %s)", e, entry)
                next_note = now + 60.0
            time.sleep(min(poll, max(0.0, limit - (now - t0))))
            poll = min(poll * 2, 2.0)
        except PermissionError:
            log.info("%s: no lock possible (read-only cache), reading without one", entry)
            yield
            return
        except OSError as e:
            if e.errno != errno.EROFS:
                raise
            log.info("%s: no lock possible (read-only file system), reading without one", entry)
            yield
            return
    try:
        yield
    finally:
        lock.release()
