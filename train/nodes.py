"""Where each rank runs: node index, node-local rank, host; the per-node record a node's first rank writes.

Launchers say it through the environment: torchrun / ``accelerate launch`` set ``RANK``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE`` and ``GROUP_RANK`` (the node), Slurm's ``srun`` sets ``SLURM_NODEID`` and
``SLURM_LOCALID``.  Per-node work (this record, anything cached on a node's local disk) is done by the
node's local rank 0, never by global rank 0 alone: on several nodes only ``--out`` is assumed shared.
"""
from __future__ import annotations

import os
import socket
from typing import Any

from shards.atomic import atomic_write_json


def _env_int(*names: str) -> int | None:
    for n in names:
        v = os.environ.get(n)
        if v is not None and v.strip().lstrip("-").isdigit():
            return int(v)
    return None


def node_info(acc: Any) -> dict[str, Any]:
    """``{rank, local_rank, node, host}`` of this process (``node``: launcher's node index, else derived)."""
    local = int(acc.local_process_index)
    local_world = _env_int("LOCAL_WORLD_SIZE") or 1
    node = _env_int("GROUP_RANK", "NODE_RANK", "SLURM_NODEID")
    if node is None:
        node = int(acc.process_index) // max(local_world, 1)
    return {"rank": int(acc.process_index), "local_rank": local, "node": node, "host": socket.gethostname()}


def write_node_record(out: str, acc: Any) -> str | None:
    """The node's local rank 0 writes ``out/nodes/node-NNN.json`` (host, ranks, pid); others write nothing."""
    if not acc.is_local_main_process:
        return None
    info = node_info(acc)
    path = os.path.join(out, "nodes", f"node-{info['node']:03d}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_json(path, {**info, "local_world_size": _env_int("LOCAL_WORLD_SIZE") or 1,
                             "world_size": int(acc.num_processes), "pid": os.getpid()})
    return path


def check_launch(acc: Any) -> None:
    """Refuse a process that a launcher started as one of several (``WORLD_SIZE`` > 1) but that formed no
    process group: on CPU, Accelerate joins a torchrun-style launch only with ``ACCELERATE_USE_CPU=true``,
    and every process would otherwise train alone, all writing into the same ``--out``."""
    launched = _env_int("WORLD_SIZE") or 1
    if launched > 1 and int(acc.num_processes) == 1:
        raise ValueError(f"this process was launched as one of WORLD_SIZE={launched} processes but joined no process "
                         f"group (on CPU, set ACCELERATE_USE_CPU=true for torchrun-style launchers); refusing to train "
                         f"alone into a shared --out")
