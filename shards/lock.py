"""One writer per directory: an advisory lock file naming its holder (pid, host, user, command).

``with DirLock(path, "run directory"):`` takes ``path/.melstream.lock`` with ``fcntl.flock``; a second
process gets :class:`LockHeld` at once, whose message names the holder, e.g.::

    run directory runs/a is in use by pid 4242 on host node7 (user ana, since 2026-12-07T02:10:00Z);
    wait for it, or pass another --out

A lock left by a dead process is taken over: ``flock`` locks die with their process, so the next
writer gets the lock and logs that it took over from the recorded (dead) holder.  Where a filesystem
refuses ``flock`` (some FUSE mounts), the fallback is the recorded pid on the same host: a holder whose
pid no longer runs there is stale.  A holder on another host without ``flock`` support is trusted to
be alive (docs/sharing.md).  The lock file is removed on release; a waiter that opened the old file
re-checks the inode after locking, so two holders can never exist at once.
"""
from __future__ import annotations

import errno
import getpass
import json
import logging
import os
import socket
import sys
import time
from typing import Any

__all__ = ["DirLock", "LockHeld", "LOCK_NAME", "read_holder"]

log = logging.getLogger("melstream.lock")
LOCK_NAME = ".melstream.lock"
_MAX_LOCK_BYTES = 4096

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


class LockHeld(RuntimeError):
    """Another live process holds the lock; ``str(err)`` is the one-line reason."""


def _me() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in a container
        user = str(os.getuid()) if hasattr(os, "getuid") else "?"
    return {"pid": os.getpid(), "host": socket.gethostname(), "user": user,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cmd": " ".join(os.path.basename(a) for a in sys.argv[:2])[:200]}


def read_holder(path: str) -> dict[str, Any]:
    """The holder record of lock file ``path`` (``{}`` if unreadable); read with a size bound."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_LOCK_BYTES)
        rec = json.loads(data.decode("utf-8", "replace") or "{}")
        return rec if isinstance(rec, dict) else {}
    except (OSError, ValueError):
        return {}


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def _describe(rec: dict[str, Any]) -> str:
    return (f"pid {rec.get('pid', '?')} on host {rec.get('host', '?')} "
            f"(user {rec.get('user', '?')}, since {rec.get('since', '?')})")


class DirLock:
    """Exclusive advisory lock on directory ``path`` (created if missing); ``what`` names it in messages
    and ``hint`` ends the refusal line (what the user can do)."""

    def __init__(self, path: str, what: str = "directory", hint: str = "wait for it to finish") -> None:
        self.dir, self.what, self.hint = path, what, hint
        self.path = os.path.join(path, LOCK_NAME)
        self._fd: int | None = None

    # ------------------------------------------------------------------ acquire / release
    def acquire(self) -> DirLock:
        os.makedirs(self.dir, exist_ok=True)
        for _ in range(20):  # the file may be replaced between open and flock: retry on a new inode
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = self._flock(fd)
            except BaseException:
                os.close(fd)
                raise
            if not locked:
                rec = read_holder(self.path)
                os.close(fd)
                raise LockHeld(f"{self.what} {self.dir} is in use by {_describe(rec)}; {self.hint}")
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            old = read_holder(self.path)
            if old.get("pid") and (old.get("pid"), old.get("host")) != (os.getpid(), socket.gethostname()):
                log.warning("%s %s: taking over a stale lock left by %s", self.what, self.dir, _describe(old))
            data = json.dumps(_me()).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise LockHeld(f"{self.what} {self.dir}: its lock file keeps changing; another process is taking it")

    def _flock(self, fd: int) -> bool:
        """True when this process now holds the lock; False when a live holder has it."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
        # no flock here: the recorded holder decides (same host: is its pid alive?)
        rec = read_holder(self.path)
        if not rec.get("pid") or rec.get("pid") == os.getpid():
            return True
        if rec.get("host") == socket.gethostname():
            return not _pid_alive(rec.get("pid"))
        return False

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if read_holder(self.path).get("pid") == os.getpid():
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
