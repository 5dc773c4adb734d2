"""Epoch data order: the global batches (clip keys, valid masks, crops) are the same whatever the world size,
the DataLoader workers, gradient accumulation and the step a run resumes from; every clip once per epoch;
the AudioSet-2M plan (2,000 shards, 64 nodes x 8 ranks x 8 workers) counted without reading audio."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from pipeline import EpochPlan, RankLayout, build_loader
from tests.test_pipeline_stream import write_dir

SIZES = [7, 3, 5, 1, 4, 9, 2]  # 31 clips, uneven: with a global batch of 4, 8 steps per epoch, one padding row


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> str:
    return write_dir(str(tmp_path_factory.mktemp("elastic")), "e", SIZES, frames=200)


def small_block_loader(shards: str, batch: int, block: int, **kw):
    """``build_loader`` in epoch order with another shuffle block (the trainer always uses 32)."""
    from torch.utils.data import DataLoader

    from pipeline import MelStream, build_sampler, read_manifests
    from pipeline.epoch_stream import StepBatches

    facts = read_manifests([shards])
    smp = build_sampler("crop", n_frames=16)
    smp.bind(facts)
    ds = MelStream(facts, smp, batch, order="epoch", block=block, return_keys=True, **kw)
    return StepBatches(DataLoader(ds, batch_size=None, num_workers=kw.get("num_workers", 0)), ds.layout,
                       kw.get("grad_accum", 1))


def global_batches(shards: str, world: int, workers: int, steps: int, start: int = 0, accum: int = 1,
                   global_batch: int = 4, seed: int = 1, block: int | None = None) -> list[dict]:
    """Every rank's loader from ``start``; rows of each step put together in rank (and micro-batch) order."""
    per_rank = []
    for r in range(world):
        kw = dict(seed=seed, rank=r, world_size=world, num_workers=workers, resume_step=start, grad_accum=accum)
        if block is None:
            loader, info = build_loader([shards], "crop", global_batch // (world * accum), data_order="epoch",
                                        return_keys=True, sampler_kwargs={"n_frames": 16}, **kw)
            assert info.extra["global_batch"] == global_batch
        else:
            loader = small_block_loader(shards, global_batch // (world * accum), block, **kw)
        it = iter(loader)
        per_rank.append([next(it) for _ in range(steps * accum)])
    out = []
    for s in range(steps):
        parts = [b for rank in per_rank for b in rank[s * accum:(s + 1) * accum]]
        out.append({"keys": [k for b in parts for k in b["__key__"]], "valid": torch.cat([b["valid"] for b in parts]),
                    "x": torch.cat([b["x"] for b in parts])})
    return out


def assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x["keys"] == y["keys"], i
        assert torch.equal(x["valid"], y["valid"]), i
        assert torch.equal(x["x"], y["x"]), i  # row 0: the clip id, row 1: the crop's frame positions


@pytest.fixture(scope="module")
def reference(synth) -> list[dict]:
    return global_batches(synth, 1, 0, 20)  # one process, no workers: 2.5 epochs


def test_every_clip_once_per_epoch(reference):
    spe = 8
    for e in range(2):
        rows = [(k, bool(v)) for b in reference[e * spe:(e + 1) * spe] for k, v in zip(b["keys"], b["valid"])]
        valid = [k for k, v in rows if v]
        assert len(valid) == 31 and sorted(valid) == [f"c{i:05d}" for i in range(31)]
        assert sum(not v for _, v in rows) == 1  # 8 x 4 rows - 31 clips
        assert all(v for _, v in rows[:-4])  # the padding row is in the epoch's last step
    assert reference[0]["keys"] != reference[8]["keys"]  # each epoch its own order
    b0 = reference[0]["x"]
    assert len(set(b0[:, 0, 0, 0].tolist())) == 4  # four lanes: four different clips in a batch


@pytest.mark.parametrize("world,workers,start,accum", [
    (2, 1, 3, 1),   # 1 -> 2 ranks, resumed mid-epoch
    (4, 3, 5, 1),   # 1 row per rank, 3 workers share it (each skips the others' steps without decoding)
    (1, 2, 6, 2),   # 2 workers (one lane pair each), gradient accumulation, across an epoch boundary
    (2, 0, 11, 2),  # resumed in the second epoch, no workers
])
def test_same_global_batches_on_any_world_size_and_workers(synth, reference, world, workers, start, accum):
    assert_same(global_batches(synth, world, workers, 20 - start, start=start, accum=accum), reference[start:])


def test_a_stateful_sampler_keeps_the_clips_exact(synth, caplog):
    """``views`` with its mixup memory: examples depend on the worker's earlier clips, the clips do not."""
    def keys(world, workers, start, steps):
        out = [[] for _ in range(steps)]
        for r in range(world):
            loader, _ = build_loader([synth], "views", 4 // world, seed=1, rank=r, world_size=world, num_workers=workers,
                                     resume_step=start, data_order="epoch", return_keys=True,
                                     sampler_kwargs={"n_frames": 16, "augment_on": "worker"})
            it = iter(loader)
            for s in range(steps):
                out[s] += next(it)["__key__"]
        return out

    with caplog.at_level("WARNING", logger="melstream.pipeline"):
        ref = keys(1, 0, 0, 10)
    assert "keeps state" in caplog.text
    assert keys(2, 1, 4, 6) == ref[4:]


def test_blocks_of_three_lanes_seek_across_blocks_and_shards(synth):
    """Blocks of 3 clips (boundaries shifted per lane): a resume lands mid-block, lanes cross blocks and shards."""
    ref = global_batches(synth, 1, 0, 12, block=3)
    assert_same(global_batches(synth, 2, 2, 7, start=5, block=3), ref[5:])
    valid = sorted(k for b in ref[:8] for k, v in zip(b["keys"], b["valid"]) if v)
    assert valid == [f"c{i:05d}" for i in range(31)]


def test_lane_positions_are_a_permutation_of_the_lane():
    plan = EpochPlan([5, 0, 9, 4, 13], seed=2, global_batch=3, block=4)
    for e in range(2):
        for p in range(3):
            n = plan.lane_len(p)
            got = [plan.storage(e, p, i)[0] for i in range(n)]
            assert sorted(got) == list(range(n)) and got != list(range(n))
            assert (plan.lane_clips(e, p) - plan.lane_start(p)).tolist() == got
    assert [plan.block_range(p, 0) for p in range(3)] == [(0, 4), (0, 3), (0, 2)]  # shifted boundaries


def test_a_broken_shard_gives_the_same_padding_rows_everywhere(synth, tmp_path):
    d = str(tmp_path / "broken")
    shutil.copytree(synth, d)
    victim = sorted(f for f in os.listdir(d) if f.endswith(".tar"))[5]  # the 9-clip shard
    with open(os.path.join(d, victim), "r+b") as f:
        f.truncate(os.path.getsize(os.path.join(d, victim)) // 2)
    one = global_batches(d, 1, 0, 8)
    two = global_batches(d, 2, 1, 5, start=3)
    assert_same(two, one[3:])
    invalid = sum(int((~b["valid"]).sum()) for b in one)
    assert 1 < invalid <= 1 + 9  # the padding row plus the clips the truncated shard lost
    assert sum(int(b["valid"].sum()) for b in one) == 32 - invalid


def test_shards_over_http_give_the_same_batches(synth, reference):
    """Streams instead of mmap: every lane holds its own HTTP connection and skips by reading."""
    import functools
    import http.server
    import threading

    from tests.test_pipeline_stream import _Quiet

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=synth))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        got = global_batches(f"http://127.0.0.1:{server.server_address[1]}/", 2, 0, 6, start=6)
    finally:
        server.shutdown()
        server.server_close()
    assert_same(got, reference[6:12])


def test_plan_refuses_what_it_cannot_keep_exact(synth):
    with pytest.raises(ValueError, match="not divisible by world size"):
        RankLayout.make(6, 0, 4, 1)
    with pytest.raises(ValueError, match="cannot fill a global batch"):
        EpochPlan([3, 2], 0, 8)
    with pytest.raises(ValueError, match="crops_per_clip"):
        build_loader([synth], "crop", 2, data_order="epoch", crops_per_clip=2, rank=0, world_size=1)


# ---------------------------------------------------------------- the AudioSet-2M plan, simulated

def audioset_sizes(n_shards: int = 2000, seed: int = 7) -> np.ndarray:
    """2,000 shards of about 1,000 clips, uneven (600 to 1,400), as a manifest would list them."""
    return np.random.default_rng(seed).integers(600, 1401, n_shards)


@pytest.mark.parametrize("nodes", [64, 32, 128])
def test_audioset_plan_counts(nodes):
    sizes = audioset_sizes()
    world, workers, global_batch = nodes * 8, 8, 4096
    plan = EpochPlan(sizes, seed=0, global_batch=global_batch)
    n = int(sizes.sum())
    spe = plan.steps_per_epoch
    lens = np.array([plan.lane_len(p) for p in range(global_batch)])
    assert lens.sum() == n and lens.max() - lens.min() <= 1 and (lens.max() == spe)
    lanes_seen, per_rank_valid_last, per_worker_valid, per_worker_items = [], [], [], []
    for r in range(world):
        lay = RankLayout.make(global_batch, r, world, workers)
        mine = [p for g in range(lay.groups) for p in lay.group_lanes(g)]
        assert len(mine) == global_batch // world  # the same rows (and so batches) per step on every rank
        lanes_seen += mine
        per_rank_valid_last.append(int(sum(lens[mine] == spe)))  # real rows in the epoch's last step
        for k in range(workers):
            lanes, phase = lay.worker(k)
            steps = len(range(phase, spe, lay.phases))  # steps of the epoch this worker makes
            last = (spe - 1) % lay.phases == phase
            per_worker_items.append(steps)
            per_worker_valid.append(steps * len(lanes) - (0 if not last else int(sum(lens[list(lanes)] < spe))))
    assert lanes_seen == list(range(global_batch))  # ranks own disjoint lanes covering the batch, in order
    assert max(per_rank_valid_last) - min(per_rank_valid_last) <= 1  # the tail is spread over the ranks
    assert sum(per_worker_valid) == n
    # no worker starved at the end of the epoch: every worker makes the same number of batches (+-1 where
    # workers share lanes by steps), and their real rows differ by at most one batch part
    assert max(per_worker_items) - min(per_worker_items) <= 1
    lanes_per_worker = -(-global_batch // world // min(workers, global_batch // world))
    assert max(per_worker_valid) - min(per_worker_valid) <= lanes_per_worker
    if nodes == 64:  # every clip exactly once (the order does not depend on the world size: checked once)
        ids = np.concatenate([plan.clip_ids(0, plan.lane_clips(0, p)) for p in range(global_batch)])
        shard, off = ids >> 32, ids & 0xFFFFFFFF
        assert len(ids) == n and (off < sizes[shard]).all()
        flat = np.concatenate([[0], np.cumsum(sizes)])[shard] + off  # position in manifest order
        assert (np.bincount(flat, minlength=n) == 1).all()
