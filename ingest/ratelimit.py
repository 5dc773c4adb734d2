"""One request-rate limit shared by all worker processes of a job: a file lock + a timestamp file.

The state is one float -- the earliest time the next request may start -- kept in a small file
(e.g. ``OUT/.ratelimit/job-0``).  :meth:`SharedRateLimiter.acquire` takes an exclusive
``fcntl.flock`` on it, reserves the next slot (``max(now, next)``), writes ``slot + interval`` back,
releases the lock and sleeps until its slot, so N workers together start at most ``rate``
requests per second however many there are, and a worker never sleeps while holding the lock.
:meth:`penalize` pushes the next slot out for everybody (used after HTTP 429 or a bot check).
Each job of an array has its own file (the limit is per job, i.e. per IP/session); the lock is
local-host only, so don't point several hosts at one file.  ``sleep_interval`` adds a random
per-request pause in ``[sleep_interval, max_sleep_interval]`` outside the lock, like yt-dlp's
``--sleep-interval``.
"""
from __future__ import annotations

import fcntl
import os
import random
import re
import time

from shards.cli_types import check_float

_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|m|min|h|hour))?\s*$", re.I)


def parse_rate(spec: str | float | int) -> float:
    """``"600/h"``, ``"10/m"``, ``"0.5/s"`` or a bare number (per hour) -> requests per second; 0 = no limit."""
    if isinstance(spec, (int, float)):
        return float(spec) / 3600.0
    m = _RATE_RE.match(str(spec))
    if not m:
        raise ValueError(f"--rate-limit {spec!r}: use N/h, N/m or N/s (e.g. 600/h); 0 disables")
    n = check_float(float(m.group(1)), 0.0, 1e9, flag="--rate-limit")  # finite: 1e400 requests would be inf
    unit = (m.group(2) or "h").lower()[0]
    return n / {"s": 1.0, "m": 60.0, "h": 3600.0}[unit]


class SharedRateLimiter:
    def __init__(self, path: str, rate_per_s: float, sleep_interval: float = 0.0,
                 max_sleep_interval: float | None = None):
        self.path = path
        self.rate = float(rate_per_s)
        self.sleep_interval = max(0.0, float(sleep_interval))
        self.max_sleep_interval = max(self.sleep_interval, float(max_sleep_interval or self.sleep_interval))
        self.last_slot: float | None = None  # wall-clock start time reserved by the last acquire()

    @property
    def interval(self) -> float:
        return 1.0 / self.rate if self.rate > 0 else 0.0

    def _update(self, fn) -> float:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, 64, 0)
            try:
                nxt = float(raw.decode().strip() or 0.0)
            except ValueError:
                nxt = 0.0
            result, new = fn(nxt, time.time())
            data = f"{new:.6f}\n".encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            return result
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def acquire(self) -> float:
        """Wait for this process's turn; returns the seconds slept."""
        def take(nxt: float, now: float):
            slot = max(now, nxt)  # with no rate limit this still honours a penalty
            return (slot, slot - now), slot + self.interval
        self.last_slot, waited = self._update(take)
        if waited > 0:
            time.sleep(waited)
        if self.max_sleep_interval > 0:
            extra = random.uniform(self.sleep_interval, self.max_sleep_interval)
            time.sleep(extra)
            waited += extra
        return waited

    def penalize(self, seconds: float) -> None:
        """No request of this job starts in the next ``seconds`` (after a 429 or a bot check)."""
        if seconds <= 0:
            return
        self._update(lambda nxt, now: (None, max(nxt, now + seconds)))
