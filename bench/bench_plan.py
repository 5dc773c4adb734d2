"""``python bench/bench_plan.py``: what planning an epoch of AudioSet-2M costs one rank, without reading audio.

A manifest of 2,000 shards of uneven size (600..1,400 clips, ~2M clips) is written to a temp directory; for
64 nodes x 8 ranks x 8 workers (global batch 4,096) and at changed world sizes, a rank resuming mid-epoch
reads the manifest, makes the epoch plan and its rank layout, and seeks every lane of every one of its
workers (shard located, first shuffle block drawn) -- everything a rank computes before its first batch.
Per rank: wall time and the peak of Python/numpy allocations (tracemalloc); plus the counting checks of
``tests/test_pipeline_elastic.py`` (same batches per rank, every clip once).  Writes ``bench/results/plan.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_manifest(root: str, sizes: np.ndarray) -> str:
    from shards import shard_name
    from shards.format import FORMAT_NAME
    from shards.frontend import get_preset

    fe = get_preset("byol_a")
    m = {"format": FORMAT_NAME, "format_version": 1, "frontend": fe.to_dict(), "frontend_hash": fe.hash(),
         "stats": {"mean": -4.5, "std": 2.7, "count": int(sizes.sum())},
         "shards": [{"name": shard_name("audioset", "unbal", i), "samples": int(n), "sha256": "0" * 64}
                    for i, n in enumerate(sizes)]}
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump(m, f)
    return root


def plan_rank(shard_dir: str, seed: int, global_batch: int, rank: int, world: int, workers: int, step: int) -> dict:
    """Everything a rank computes before its first batch when resuming at ``step``."""
    from pipeline import EpochPlan, RankLayout, read_manifests

    facts = read_manifests([shard_dir])
    plan = EpochPlan([s.samples for s in facts.shards], seed, global_batch)
    lay = RankLayout.make(global_batch, rank, world, workers)
    e, pos = plan.step_pos(step)
    seeks = 0
    for k in range(workers):
        lanes, _ = lay.worker(k)
        for p in lanes:
            b = plan.block_of(p, pos)
            plan.locate(e, plan.lane_start(p) + plan.block_range(p, b)[0])
            plan.block_perm(e, p, b)
            seeks += 1
    return {"steps_per_epoch": plan.steps_per_epoch, "lanes": seeks, "clips": plan.num_clips}


def measure(shard_dir: str, seed: int, global_batch: int, rank: int, world: int, workers: int, step: int) -> dict:
    tracemalloc.start()
    t0 = time.perf_counter()
    out = plan_rank(shard_dir, seed, global_batch, rank, world, workers, step)
    sec = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {**out, "seconds": sec, "peak_mb": peak / 2**20}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shards", type=int, default=2000)
    ap.add_argument("--global-batch", type=int, default=4096)
    ap.add_argument("--nodes", default="64,32,128", help="node counts (first: the original run)")
    ap.add_argument("--ranks-per-node", type=int, default=8)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--out", default="bench/results/plan.json")
    a = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    sizes = np.random.default_rng(7).integers(600, 1401, a.shards)
    res: dict = {"clips": int(sizes.sum()), "shards": a.shards, "global_batch": a.global_batch, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        write_manifest(tmp, sizes)
        from pipeline import EpochPlan

        spe = EpochPlan(sizes, 0, a.global_batch).steps_per_epoch
        step = spe + spe // 2  # resuming in the middle of the second epoch
        for nodes in (int(n) for n in a.nodes.split(",")):
            world = nodes * a.ranks_per_node
            rows = [measure(tmp, 0, a.global_batch, r, world, a.workers, step) for r in (0, world // 2, world - 1)]
            worst = {"seconds": max(r["seconds"] for r in rows), "peak_mb": max(r["peak_mb"] for r in rows)}
            res["runs"][f"{nodes}x{a.ranks_per_node}x{a.workers}"] = {
                "world_size": world, "rows_per_rank": a.global_batch // world, "steps_per_epoch": rows[0]["steps_per_epoch"],
                "resume_step": step, "per_rank_seconds_max": round(worst["seconds"], 4),
                "per_rank_peak_mb_max": round(worst["peak_mb"], 2), "ranks_measured": [0, world // 2, world - 1]}
            print(f"{nodes:4d} nodes x {a.ranks_per_node} ranks x {a.workers} workers: {spe} steps/epoch, "
                  f"{a.global_batch // world} rows/rank; plan per rank {1000 * worst['seconds']:.1f} ms, "
                  f"peak {worst['peak_mb']:.2f} MB", flush=True)
    res["targets"] = {"per_rank_seconds": 1.0, "per_rank_peak_mb": 100}
    res["measure"] = ("wall time and tracemalloc peak of one rank's planning (manifest read and validated, epoch plan, "
                      "rank layout, every worker's lanes seeked) at a mid-epoch resume step; the worst of three ranks")
    res["machine"] = {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
                      "platform": platform.platform()}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
