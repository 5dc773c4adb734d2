"""One writer per shard output directory: the lock an ingest holds on its ``--out`` while it runs.

A plain ingest (or ``--merge``) holds ``OUT/.melstream.lock`` (``shards.lock.DirLock``).  The jobs of an
array (``--num-jobs N --job-index j``) write disjoint shards into the same ``OUT`` at the same time, so
each holds its own lock, ``OUT/.melstream.jobs/N-j/.melstream.lock``: two jobs with the same index refuse
each other, different indices run side by side.  A plain ingest and an array job never run together:
each takes its own lock first, then probes the other kind (take and release at once), and refuses
when one is held -- with both locks taken before the probes, at least one of two racing ingests sees
the other.  A lock left by a killed ingest is taken over (``flock`` locks die with their process).
"""
from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager

from shards.lock import LOCK_NAME, DirLock, LockHeld, read_holder

JOBS_DIR = ".melstream.jobs"
HINT = "wait for it to finish, or pass another --out"


def _held_by(path: str, what: str) -> LockHeld:
    rec = read_holder(os.path.join(path, LOCK_NAME))
    return LockHeld(f"{what} is in use by pid {rec.get('pid', '?')} on host {rec.get('host', '?')} "
                    f"(user {rec.get('user', '?')}, since {rec.get('since', '?')}); {HINT}")


def _probe(path: str, what: str) -> None:
    """Refuse (:class:`LockHeld`) when a live process holds the lock of ``path``; leave it free otherwise."""
    try:
        DirLock(path, what).acquire().release()
    except LockHeld:
        raise _held_by(path, what) from None


def _take(path: str, what: str) -> DirLock:
    try:
        return DirLock(path, what, hint=HINT).acquire()
    except LockHeld:
        raise _held_by(path, what) from None


@contextmanager
def out_lock(out: str, num_jobs: int = 1, job_index: int = 0, merge: bool = False) -> Iterator[None]:
    """Hold the lock of shard output directory ``out`` for this ingest (see the module docstring)."""
    out = os.path.abspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"--out {out}: is not a folder")
    if num_jobs <= 1 or merge:
        lock = _take(out, f"shard directory {out}")
        try:
            for d in sorted(glob.glob(os.path.join(glob.escape(out), JOBS_DIR, "*"))):
                n, _, j = os.path.basename(d).partition("-")
                _probe(d, f"shard directory {out} (job {j} of {n})")
            yield
        finally:
            lock.release()
        return
    path = os.path.join(out, JOBS_DIR, f"{num_jobs}-{job_index}")
    lock = _take(path, f"shard directory {out} (job {job_index} of {num_jobs})")
    try:
        if os.path.exists(os.path.join(out, LOCK_NAME)):
            _probe(out, f"shard directory {out}")
        yield
    finally:
        lock.release()  # the empty job folder stays: removing it could race with the next job's lock
