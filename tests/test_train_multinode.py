"""Two "nodes" on one machine (``accelerate launch --num_machines 2``, gloo on CPU) and elastic exact resume
through the real trainer: a run in epoch order saved at step 2 on one process, resumed on two nodes to
step 4 and back on one process (with a changed --num-workers each time) logs the losses of an uninterrupted
run to 1e-6, the ranks agree bit for bit, each node's local rank 0 writes its node record, and the
exported encoder is the final step's."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from tests.conftest import ROOT
from tests.test_train_ddp import _free_port, _process_tree

# temporal_gap has no batch-coupled randomness; a 1-block ViT has no BatchNorm (CPU ranks keep local BN
# statistics) and no dropout, so one process and two see the same loss for the same global batch
FLAGS = ["--method", "temporal_gap", "--encoder", "vit_tiny", "--encoder-arg", "depth=1", "--encoder-arg", "n_mels=64",
         "--encoder-arg", "n_frames=96", "--batch-size", "8", "--data-order", "epoch", "--seed", "3",
         "--log-every", "1", "--save-every", "2", "--tracker", "none", "--hp", "schedule=constant",
         "--init-timeout-s", "60"]


def _in_process(argv: list[str]) -> dict:
    from models import ENCODERS
    from models.objectives import OBJECTIVES
    from train.config import load_config
    from train.loop import train

    return train(load_config(argv, sorted(OBJECTIVES), sorted(ENCODERS)))


def _two_nodes(argv: list[str], timeout: float = 150) -> None:
    """Node 0 and node 1, one process each, as two ``accelerate launch`` commands would start them."""
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "MELSTREAM_HANG_DUMP_S": "120"}
    port = str(_free_port())
    procs = []
    for node in (0, 1):
        cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "2", "--machine_rank",
               str(node), "--main_process_ip", "127.0.0.1", "--main_process_port", port, "--mixed_precision", "no",
               "--dynamo_backend", "no", os.path.join(ROOT, "train", "pretrain.py"), *argv]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      cwd=ROOT, start_new_session=True))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=timeout))
        except subprocess.TimeoutExpired:
            trees = "\n".join(_process_tree(q.pid) for q in procs)
            for q in procs:
                os.killpg(q.pid, 9)
            raise AssertionError(f"a node still running after {timeout} s; processes:\n{trees}") from None
    for p, (so, se) in zip(procs, outs):
        assert p.returncode == 0, se[-5000:]
    assert outs[0][0].count("done: 4 steps") == 1 and "done:" not in outs[1][0]  # reported by global rank 0 only


def _losses(out) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, open(out / "metrics.jsonl"))}


def test_elastic_resume_one_two_nodes_one(demo_small, tmp_path, one_torch_thread):
    shards = os.path.join(demo_small[0], "pretrain")  # 24 clips: 3 steps of 8 per epoch, 6 steps = 2 epochs
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    ref = _in_process(["--shards", shards, "--out", str(whole), "--steps", "6", "--num-workers", "0", *FLAGS])
    assert ref["step"] == 6
    _in_process(["--shards", shards, "--out", str(parts), "--steps", "2", "--num-workers", "0", *FLAGS])
    _two_nodes(["--shards", shards, "--out", str(parts), "--steps", "4", "--num-workers", "1", "--resume", *FLAGS])
    summary = json.load(open(parts / "run_summary.json"))
    assert summary["world_size"] == 2 and summary["step_per_rank"] == [4, 4] and summary["ranks_in_sync"]
    # the clips of steps 3 and 4 on two nodes (4 rows each) are the uninterrupted run's global batches
    r0, r1 = summary["first_clips_read_per_rank"]
    (seen,) = json.load(open(whole / "run_summary.json"))["first_clips_read_per_rank"]
    assert r0[:4] + r1[:4] == seen[16:24] and r0[4:8] + r1[4:8] == seen[24:32]
    assert [(r["rank"], r["local_rank"], r["node"]) for r in summary["ranks"]] == [(0, 0, 0), (1, 0, 1)]
    for node in (0, 1):  # each node's local rank 0 wrote its own record (not global rank 0 for both)
        rec = json.load(open(parts / "nodes" / f"node-{node:03d}.json"))
        assert rec["node"] == node and rec["local_rank"] == 0 and rec["rank"] == node and rec["world_size"] == 2
    state = json.load(open(parts / "checkpoints" / "step_0000004" / "data_state.json"))
    assert state["world_size"] == 2 and state["global_batch"] == 8 and state["data_order"] == "epoch"
    assert state["step"] == 4 and state["epoch"] == 1 and state["steps_per_epoch"] == 3
    assert yaml.safe_load(open(parts / "config.yaml"))["local_batch"] == 4
    end = _in_process(["--shards", shards, "--out", str(parts), "--steps", "6", "--num-workers", "2", "--resume", *FLAGS])
    assert end["step"] == 6 and end["world_size"] == 1
    want, got = _losses(whole), _losses(parts)
    assert sorted(got) == list(range(1, 7)) == sorted(want)
    for step in want:
        assert abs(got[step] - want[step]) <= 1e-6, (step, got[step], want[step])
    assert json.load(open(parts / "encoder.json"))["step"] == 6  # exported at the end


def test_resume_with_another_global_batch_is_refused(demo_small, tmp_path, one_torch_thread):
    shards = os.path.join(demo_small[0], "pretrain")
    out = tmp_path / "run"
    flags = [f for f in FLAGS]
    _in_process(["--shards", shards, "--out", str(out), "--steps", "2", "--num-workers", "0", *flags])
    flags[flags.index("--batch-size") + 1] = "4"
    from train.pretrain import main

    rc = main(["--shards", shards, "--out", str(out), "--steps", "4", "--num-workers", "0", "--resume", *flags])
    assert rc == 2


def test_a_launched_process_without_a_process_group_is_refused(demo_small, tmp_path, monkeypatch, capsys):
    """torchrun on CPU without ACCELERATE_USE_CPU: Accelerate forms no group, so each process would train
    alone into the same --out; refused with one line."""
    from train.pretrain import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    rc = main(["--shards", os.path.join(demo_small[0], "pretrain"), "--out", str(tmp_path / "r"), "--steps", "1",
               "--num-workers", "0", *FLAGS])
    assert rc == 2 and "WORLD_SIZE=2" in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_resume_checks_of_the_data_state(caplog):
    from train.data_state import check_resume

    now = {"data_order": "epoch", "seed": 3, "step": 4, "global_batch": 8, "block": 32, "dataset": "a", "num_clips": 24}
    check_resume(dict(now, world_size=1, num_workers=0), dict(now, world_size=4, num_workers=2), "ckpt")  # elastic
    for change, words in (({"seed": 4}, "--seed 4"), ({"global_batch": 16}, "--batch-size 16"),
                          ({"data_order": "resampled"}, "--data-order resampled")):
        try:
            check_resume(dict(now, **change), now, "ckpt")
        except ValueError as e:
            assert words in str(e) and "\n" not in str(e)
        else:
            raise AssertionError(f"{change} was not refused")
    with caplog.at_level("WARNING", logger="melstream.train"):
        check_resume(dict(now, dataset="b", num_clips=30), now, "ckpt")  # other shards: a warning, not an error
        check_resume(None, now, "ckpt")  # a checkpoint from before data_state.json
    assert "shards differ" in caplog.text and "records no data order" in caplog.text
    check_resume(None, dict(now, data_order="resampled"), "ckpt")
