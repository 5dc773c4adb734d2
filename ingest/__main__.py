"""``python -m ingest SOURCE ... --out DIR``: build log-mel shards from a source (see --help)."""
from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys

# Before torch (OpenMP) loads: threads that finish a parallel region of the log-mel sleep instead of spinning.
# Spinning threads make each other wait whenever another program holds a core: 1 worker with 2 threads went at
# 12 clips/s instead of 97 at load average 2.7 on 2 cores (README); the workers inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from shards.cli import cli_main  # noqa: E402
from shards.cli_types import OneLineParser, bounded_float, bounded_int  # noqa: E402
from shards.codec import CODECS, DEFAULT_CODEC, DEFAULT_LEVEL  # noqa: E402
from shards.frontend import DEFAULT_PRESET, PRESETS  # noqa: E402
from shards.lock import LockHeld  # noqa: E402
from shards.redact import redact, redact_obj  # noqa: E402

from . import bounds  # noqa: E402
from .bounds import check_config  # noqa: E402
from .codec_choices import CODEC_HELP  # noqa: E402
from .engine import DECODE_BATCH, DEFAULT_SHARD_SIZE, IngestConfig, run_ingest  # noqa: E402
from .outlock import out_lock  # noqa: E402
from .sources import SOURCES  # noqa: E402  # every module of ingest/sources/ registers itself on first lookup


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="dataset root: shards go to OUT/<split>/")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS), help="log-mel frontend preset")
    p.add_argument("--codec", default=DEFAULT_CODEC, choices=list(CODECS), help=CODEC_HELP)
    p.add_argument("--level", type=bounded_int(*bounds.LEVEL), default=DEFAULT_LEVEL,
                   help=f"zstd level (default {DEFAULT_LEVEL}; 9 encodes about twice as fast, about 3.5 %% larger)")
    p.add_argument("--shard-size", type=bounds.shard_size_type, default=DEFAULT_SHARD_SIZE,
                   help=f"samples per shard (1000), bytes (200MB, estimated from durations or file sizes) or "
                        f"both, whichever is reached first (default {DEFAULT_SHARD_SIZE})")
    p.add_argument("--workers", type=bounded_int(1, bounds.max_workers()), default=1,
                   help="parallel decode processes; they share out the items of every shard (output identical)")
    p.add_argument("--threads", type=bounded_int(0, bounds.max_threads()), default=0,
                   help="torch threads per decode process for the log-mel (default 0: cores // workers, at least 1; "
                        "on a machine busy with other jobs 1 is faster, see README)")
    p.add_argument("--num-jobs", type=bounded_int(*bounds.NUM_JOBS), default=1, help="total jobs of a job array (disjoint shard sets)")
    p.add_argument("--job-index", type=bounded_int(0, bounds.NUM_JOBS[1] - 1), default=0, help="this job's index in [0, num-jobs)")
    p.add_argument("--limit", type=bounded_int(*bounds.LIMIT), default=None, help="ingest at most this many items (first by key)")
    p.add_argument("--min-seconds", type=bounded_float(*bounds.SECONDS), default=0.0, help="reject clips shorter than this")
    p.add_argument("--decode-batch", type=bounded_int(*bounds.DECODE_BATCH), default=DECODE_BATCH,
                   help=f"files decoded per ffmpeg process where the source supports it (folder, demo; "
                        f"default {DECODE_BATCH}); 1: one process per file")
    p.add_argument("--segment-seconds", type=bounded_float(bounds.MIN_SEGMENT, bounds.SECONDS[1], allow=(0.0,)), default=0.0,
                   help="cut recordings longer than 1.5x this into clips of about this length (keys KEY_<start ms>; "
                        "0: one clip per file). Samplers draw clips uniformly, so without cutting a 1-hour file "
                        "weighs as much as a 1-second one")
    p.add_argument("--merge", action="store_true",
                   help="after all jobs of an array: ingest nothing, build each split's manifest (with the "
                        "source's summary: AudioSet ledger, missing lists) from the shards of all jobs")
    p.add_argument("--no-progress", action="store_true")


def build_parser(prog: str = "python -m ingest") -> argparse.ArgumentParser:
    ap = OneLineParser(prog=prog, description="Ingest audio into melstream log-mel shards.")
    sub = ap.add_subparsers(dest="source", required=True)
    for name, spec in SOURCES.items():
        p = sub.add_parser(name, help=spec.help)
        spec.add_args(p)
        add_common(p)
    return ap


def _manifest_extra(source):
    """``source.manifest_extra()`` or ``manifest_extra(split)``, called after the shards are written."""
    fn = getattr(source, "manifest_extra", None)
    if fn is None:
        return None
    try:
        takes_split = len(inspect.signature(fn).parameters) > 0
    except (TypeError, ValueError):
        takes_split = False
    return (lambda split: fn(split)) if takes_split else (lambda split: fn())


@cli_main("python -m ingest")
def main(argv: list[str] | None = None, prog: str = "python -m ingest") -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    a = build_parser(prog).parse_args(argv)
    cfg = IngestConfig(out=a.out, preset=a.preset, codec=a.codec, level=a.level, shard_size=a.shard_size,
                       workers=a.workers, num_jobs=a.num_jobs, job_index=a.job_index, min_seconds=a.min_seconds,
                       limit=a.limit, progress=not a.no_progress, decode_batch=a.decode_batch,
                       merge=a.merge, segment_seconds=a.segment_seconds, threads=a.threads)
    try:
        check_config(cfg)  # before the lock and the source: a bad value never takes a resource
        with out_lock(cfg.out, cfg.num_jobs, cfg.job_index, cfg.merge):  # one writer per --out (per job of an array)
            source = SOURCES[a.source].run(a)
            summary = run_ingest(source, cfg, command=redact_obj([*prog.split(), *(argv if argv is not None else sys.argv[1:])]),
                                 extra_manifest=_manifest_extra(source))
            finalize = getattr(source, "finalize", None)
            if finalize is not None:  # e.g. the AudioSet ledger and missing lists, also after a job of an array
                summary.update(finalize() or {})
    except (ValueError, FileNotFoundError, NotADirectoryError, LockHeld) as e:
        print(redact(f"error: {e}"), file=sys.stderr)
        return 2
    print(json.dumps(redact_obj(summary), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
