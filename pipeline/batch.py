"""Shard opening and batch collation, shared by the resampled and the epoch streams (``dataset.py``,
``epoch_stream.py``)."""
from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import torch

from .samplers.base import Sampler
from .tario import map_file
from .urls import local_path, open_stream, scheme_of

# Local shards are read through a read-only mmap: member bytes are zero-copy views, and chunks a crop
# does not need are never copied (~7 % more crops/s than buffered reads, interleaved A/B).  Shards are
# immutable once written (temp file + rename), so a mapping never sees a file change under it.
# MELSTREAM_MMAP=0 reads local shards as streams, like remote ones.
USE_MMAP = os.environ.get("MELSTREAM_MMAP", "1") != "0"


def open_shard(url: str, allow_pipe: bool = False) -> Any:
    """A context manager giving a forward-only ``read(n)`` stream of one shard."""
    if USE_MMAP and scheme_of(url) in ("", "file"):
        mapped = map_file(local_path(url))
        if mapped is not None:
            return contextlib.nullcontext(mapped)
    return open_stream(url, allow_pipe=allow_pipe)


def _as_list(out) -> list[dict]:
    if out is None:
        return []
    return out if isinstance(out, list) else [out]


def collate(examples: list[dict], valid: list[bool] | np.ndarray, sampler: Sampler, rng: np.random.Generator,
            return_keys: bool = False) -> dict[str, Any]:
    """Stack per-example arrays, run the sampler's batch-level transform, convert to tensors."""
    names = [k for k in examples[0] if k != "__key__"]
    batch = {k: np.stack([e[k] for e in examples]) for k in names}
    batch["valid"] = np.asarray(valid, dtype=bool)
    batch = sampler.collate(batch, rng)
    out: dict[str, Any] = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
    if return_keys:
        out["__key__"] = [e.get("__key__") for e in examples]
    return out
