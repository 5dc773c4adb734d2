"""The bounds of every number an ingest takes from outside (flags, or ``IngestConfig`` from Python).

One table, used twice: as argparse ``type=`` parsers (``shards.cli_types``) so a bad flag is refused
before anything starts, and by :func:`check_config` at the top of ``run_ingest`` for callers that
build an ``IngestConfig`` themselves.  The ceilings are documented in docs/robustness-ingest.md.
"""
from __future__ import annotations

import os
from typing import Any

from shards.cli_types import BoundError, check_float, check_int, parse_int, parse_size

LEVEL = (1, 22)  # zstd levels this toolkit writes (negative "fast" levels are not offered)
LIMIT = (1, 1_000_000_000)  # --limit: items
NUM_JOBS = (1, 100_000)  # --num-jobs: a job array (shard indices have six digits)
DECODE_BATCH = (1, 256)  # --decode-batch: files decoded by one ffmpeg process (their audio is held at once)
WORKERS_PER_CORE = 4  # --workers ceiling: 4 per usable core (decoding is CPU-bound; more only costs memory)
MIN_WORKER_CEILING = 4  # ... but at least this many on a small machine
THREADS_PER_CORE = 4  # --threads ceiling, same rule
SECONDS = (0.0, 86_400.0)  # --min-seconds, --segment-seconds: at most one day
MIN_SEGMENT = 0.5  # --segment-seconds below this would cut clips shorter than a useful crop (0: off)
SHARD_COUNT = (1, 1_000_000)  # --shard-size samples per shard
SHARD_BYTES = (1_000, 100_000_000_000)  # --shard-size bytes per shard: 1 KB .. 100 GB


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a Slurm allocation), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def max_workers() -> int:
    return max(MIN_WORKER_CEILING, WORKERS_PER_CORE * usable_cores())


def max_threads() -> int:
    return max(MIN_WORKER_CEILING, THREADS_PER_CORE * usable_cores())


def shard_limits(spec: str) -> tuple[int | None, float | None]:
    """``"1000"`` -> (1000, None); ``"200MB"`` -> (None, 2e8); ``"1000,256MB"`` -> (1000, 2.56e8): a shard
    is closed when it reaches either limit.  A bare number is a sample count, one with a unit a size."""
    flag = "--shard-size"
    usage = f"{flag}: give a sample count (1000), a size (200MB) or both (1000,256MB), got {spec!r}"
    parts = str(spec).split(",")
    if not 1 <= len(parts) <= 2:
        raise BoundError(usage)
    count: int | None = None
    nbytes: float | None = None
    for part in parts:
        p = part.strip()
        if p.lstrip("+-").isdigit():
            if count is not None:
                raise BoundError(usage)
            try:
                count = parse_int(p, *SHARD_COUNT)
            except BoundError as e:
                raise BoundError(f"{flag}: sample count {e}") from None
        else:
            if nbytes is not None:
                raise BoundError(usage)
            try:
                nbytes = float(parse_size(p, *SHARD_BYTES))
            except BoundError as e:
                raise BoundError(usage if "expected a size" in str(e) else f"{flag}: size {e}") from None
    return count, nbytes


def shard_size_type(spec: str) -> str:
    """argparse ``type=`` for ``--shard-size``: checked here, kept as text (the engine parses it again)."""
    shard_limits(spec)
    return spec


def check_config(cfg: Any) -> None:
    """Every number of ``cfg`` (an ``ingest.engine.IngestConfig``; typed ``Any`` so that the engine can import
    this module) within its bounds, else :class:`BoundError` naming the flag."""
    check_int(cfg.level, *LEVEL, flag="--level")
    check_int(cfg.workers, 1, max_workers(), flag="--workers")
    check_int(cfg.threads, 0, max_threads(), flag="--threads")
    check_int(cfg.num_jobs, *NUM_JOBS, flag="--num-jobs")
    check_int(cfg.job_index, 0, cfg.num_jobs - 1, flag="--job-index")
    if cfg.limit is not None:
        check_int(cfg.limit, *LIMIT, flag="--limit")
    check_int(cfg.decode_batch, *DECODE_BATCH, flag="--decode-batch")
    check_float(cfg.min_seconds, *SECONDS, flag="--min-seconds")
    check_float(cfg.segment_seconds, MIN_SEGMENT, SECONDS[1], flag="--segment-seconds", allow=(0.0,))
    shard_limits(cfg.shard_size)
