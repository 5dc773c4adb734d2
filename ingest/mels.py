"""``decode_to_mels``: the public ingest call for other packages (eval's log-mel cache).

It takes the frontend itself (a :class:`~shards.frontend.FrontendConfig`, e.g. a model's own from
``encoder.json``), not a preset name, and runs :func:`ingest.engine.run_ingest`: the same plan,
resume, worker pool, progress bar and manifest as ``python -m ingest``.
"""
from __future__ import annotations

from typing import Any

from shards.codec import DEFAULT_LEVEL
from shards.frontend import FrontendConfig

from .engine import DEFAULT_SHARD_SIZE, IngestConfig, Source, run_ingest, usable_cores


def decode_to_mels(source: Source, out: str, frontend: FrontendConfig, *, workers: int = 1, progress: bool = True,
                   shard_size: str = DEFAULT_SHARD_SIZE, level: int = DEFAULT_LEVEL,
                   command: list[str] | None = None, extra_manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Log-mels of every item of ``source`` through ``frontend``, as shards with a manifest under
    ``out/<split>/`` (finished shards of an earlier run are kept); the summary of :func:`run_ingest`.
    ``workers`` (decode processes) is refused outside ``1 .. 2 x usable cores`` before any process starts."""
    if not isinstance(frontend, FrontendConfig):
        raise TypeError(f"frontend must be a FrontendConfig, not {type(frontend).__name__}")
    ceiling = 2 * usable_cores()
    if not (isinstance(workers, int) and 1 <= workers <= ceiling):
        raise ValueError(f"--workers {workers}: decode processes must be between 1 and {ceiling} (2 x usable cores)")
    cfg = IngestConfig(out=out, level=level, shard_size=shard_size, workers=workers, progress=progress)
    return run_ingest(source, cfg, command=command, extra_manifest=extra_manifest, frontend=frontend)
