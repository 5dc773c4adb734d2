"""Two CPU ranks through `accelerate launch` (gloo): the documented way really starts two processes,
the ranks stay bit-identical, and they read different data."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import yaml

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_tree(root: int) -> str:
    """pid, state, kernel wait channel and command of ``root`` and its descendants (from /proc)."""
    rows, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            stat = open(f"/proc/{pid}/stat").read()
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")[:160]
            wchan = open(f"/proc/{pid}/wchan").read()
            kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        except OSError:
            continue
        rows.append(f"{pid} {stat.split(')')[1].split()[0]} {wchan} {cmd}")
        todo += [int(k) for k in kids]
    return "\n".join(rows)


def test_two_cpu_ranks_stay_in_sync(demo_small, tmp_path):
    shards_dir = os.path.join(demo_small[0], "pretrain")
    out = tmp_path / "ddp"
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    # MELSTREAM_HANG_DUMP_S: a rank still alive then prints every thread's stack and exits 1
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "MELSTREAM_HANG_DUMP_S": "150"}
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
           "--main_process_port", str(_free_port()),
           os.path.join(ROOT, "train", "pretrain.py"), "--method", "temporal_gap", "--shards", shards_dir,
           "--out", str(out), "--steps", "10", "--batch-size", "8", "--num-workers", "0", "--log-every", "5",
           "--save-every", "10", "--tracker", "none", "--init-timeout-s", "120",
           "--hp", "schedule=warmup_cosine", "--hp", "warmup_steps=1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)
    try:
        so, se = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        tree = _process_tree(proc.pid)
        os.killpg(proc.pid, 9)
        so, se = proc.communicate()
        raise AssertionError(f"launcher still running after 240 s; processes:\n{tree}\nstdout: {so[-1000:]}\n"
                             f"stderr: {se[-6000:]}") from None
    assert proc.returncode == 0, se[-6000:]
    assert so.count("done: 10 steps") == 1, so  # reported once, by the main process
    summary = json.load(open(out / "run_summary.json"))
    assert summary["world_size"] == 2 and summary["step"] == 10
    fps = summary["param_fingerprints"]
    assert len(fps) == 2 and fps[0] == fps[1] and summary["ranks_in_sync"]
    r0, r1 = summary["first_clips_read_per_rank"]
    assert len(r0) == len(r1) == 10 * 4  # 8 global = 4 per rank per step
    assert r0[:4] != r1[:4] and r0 != r1  # different streams per rank
    cfg = yaml.safe_load(open(out / "config.yaml"))
    assert cfg["world_size"] == 2 and cfg["local_batch"] == 4 and cfg["global_batch"] == 8
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [5, 10] and all(r["world_size"] == 2 for r in rows)
    # the schedule counts optimiser steps, not steps x world size (Accelerate's default would double it)
    import math

    for r in rows:
        expect = 1e-4 * 0.5 * (1 + math.cos(math.pi * (r["step"] - 1) / 9))
        assert abs(r["lr"] - expect) < 1e-12, (r["step"], r["lr"], expect)


def test_two_cpu_ranks_stop_together_on_a_time_budget(demo_small, tmp_path):
    """``--max-minutes`` under DDP: rank 0 decides both the planned length and the stop and broadcasts
    them, so both ranks stop at the same step (a per-rank decision would desynchronise the collectives)."""
    shards_dir = os.path.join(demo_small[0], "pretrain")
    out = tmp_path / "ddp_time"
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "MELSTREAM_HANG_DUMP_S": "150"}
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
           "--main_process_port", str(_free_port()),
           os.path.join(ROOT, "train", "pretrain.py"), "--method", "temporal_gap", "--shards", shards_dir,
           "--out", str(out), "--batch-size", "8", "--num-workers", "0", "--log-every", "5",
           "--save-every", "100000", "--tracker", "none", "--init-timeout-s", "120",
           "--max-minutes", "0.25", "--budget-plan-steps", "3", "--hp", "schedule=warmup_cosine",
           "--hp", "warmup_steps=1"]  # no --steps: the paper's 300k, re-planned
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)
    try:
        so, se = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        tree = _process_tree(proc.pid)
        os.killpg(proc.pid, 9)
        so, se = proc.communicate()
        raise AssertionError(f"launcher still running after 240 s; processes:\n{tree}\nstderr: {se[-6000:]}") from None
    assert proc.returncode == 0, se[-6000:]
    summary = json.load(open(out / "run_summary.json"))
    step = summary["step"]
    assert summary["world_size"] == 2
    # the clock ends the run, or (on a loaded machine, past 95 % of the budget, where a plan is no longer
    # extended) the plan it made runs out first: either way at a step both ranks agree on
    assert summary["stopped_by"] == "time" or (summary["stopped_by"] == "steps" and step == summary["planned_steps"])
    assert summary["step_per_rank"] == [step, step] and summary["ranks_in_sync"]
    plan = json.load(open(out / "budget.json"))  # first planned at step 2 or 3 (a tenth of the budget or 3 steps)
    assert plan["plans"][0]["step"] in (2, 3) and plan["planned_steps"] > plan["planned_at_step"]
    assert summary["planned_steps"] == plan["planned_steps"] and step < 300_000
    assert json.load(open(out / "encoder.json"))["step"] == step
    assert (out / "checkpoints" / "latest").read_text().strip() == f"step_{step:07d}"


def test_two_cpu_ranks_stop_together_when_the_run_dir_is_refused(demo_small, tmp_path):
    """The main process alone claims ``--out`` (lock, what is there: train/outdir.py) and broadcasts its
    refusal: both ranks stop at once with one error line, and no rank waits for a peer that has left."""
    from tests.test_hostile_inputs import assert_one_line, snapshot

    out = tmp_path / "taken"
    out.mkdir()
    (out / "config.yaml").write_text("method: temporal_gap\n")
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    before = snapshot(out)
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "MELSTREAM_HANG_DUMP_S": "150"}
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
           "--main_process_port", str(_free_port()),
           os.path.join(ROOT, "train", "pretrain.py"), "--method", "temporal_gap", "--shards",
           os.path.join(demo_small[0], "pretrain"), "--out", str(out), "--steps", "2", "--batch-size", "8",
           "--num-workers", "0", "--tracker", "none", "--init-timeout-s", "120"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert p.returncode != 0
    ours = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]  # the launcher adds its own report
    assert len(ours) == 1, p.stderr[-3000:]
    assert_one_line(ours[0], f"--out {out}: holds a temporal_gap run with no checkpoint yet", "--overwrite")
    assert "exitcode  : 2" in p.stderr and "exitcode  : 1" not in p.stderr  # both ranks: the refusal, no hang dump
    assert snapshot(out) == before
