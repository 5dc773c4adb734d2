"""The ingest progress bar: it moves per clip as clips are decoded, in this process or in pool workers.

Workers add to a shared count (a ``multiprocessing`` Value handed to the pool's initializer); the main
process reads it every ``POLL_S`` seconds while it waits on a group, so the bar moves per clip even when
a group of ``--decode-batch`` items takes minutes (downloads).  Shown per ``shards/progress.py``'s rule.
"""
from __future__ import annotations

from typing import Any, Callable

from shards.progress import progress_bar

POLL_S = 0.5


def add_one(count: Any) -> None:
    """In a worker: one more clip decoded."""
    with count.get_lock():
        count.value += 1


class ClipProgress:
    """A bar over ``total`` clips: ``item()`` for a clip decoded here, ``reused(n)`` for clips taken from a
    shard's previous version, ``wait(result)`` to await a worker's group while showing the workers' clips."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.bar = progress_bar(total, desc, "clip", enabled=enabled)
        self.shared: Any = None
        self._seen = 0

    def share(self, ctx: Any) -> Any:
        """The count for the workers of a pool of context ``ctx`` (pass it to their initializer)."""
        self.shared = ctx.Value("q", 0)
        return self.shared

    def item(self) -> None:
        self.bar.update(1)

    def reused(self, n: int) -> None:
        if n:
            self.bar.update(n)

    def poll(self) -> None:
        if self.shared is not None:
            n = self.shared.value
            self.bar.update(n - self._seen)
            self._seen = n

    def wait(self, result: Any) -> Any:
        """``result.get()`` of an ``AsyncResult``, polling the workers' count meanwhile."""
        while not result.ready():
            result.wait(POLL_S)
            self.poll()
        got = result.get()
        self.poll()
        return got

    def close(self) -> None:
        self.poll()
        self.bar.close()


def counter(count: Any) -> Callable[[], None] | None:
    """The per-item callback of a worker given ``count`` (None: no bar to feed)."""
    return None if count is None else (lambda: add_one(count))
