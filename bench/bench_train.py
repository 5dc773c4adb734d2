"""`make bench-train`: training examples/s on this CPU with the real pipeline vs the same batch in memory.

For ``temporal_gap``/``mobile`` and ``byol_a``/``audio_ntt`` (d=512): the same objective, optimiser
and step code run (a) fed by ``pipeline.build_loader`` (1 DataLoader worker) and (b) on one batch
held in memory.  ``pipeline_overhead_ratio`` = time per step (a) / (b): below 1.1 means the data path
keeps up with the model.  Then the real trainer with 1 process vs 2 processes (gloo) on the same
global batch: ``ddp2_vs_1_ratio`` = examples/s (2 processes) / examples/s (1 process).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import torch
from _common import ROOT, merge_results, table

CASES = [("temporal_gap", "mobile", {}, 256), ("byol_a", "audio_ntt", {"d": 512}, 64)]


def _shards(tmp: str) -> str:
    d = os.path.join(ROOT, "data", "demo", "pretrain")
    if os.path.exists(os.path.join(d, "manifest.json")):
        return d
    from ingest.__main__ import main

    main(["demo", "--out", os.path.join(tmp, "demo"), "--audio-dir", os.path.join(tmp, "audio"),
          "--pretrain-clips", "64", "--train-clips", "0", "--test-clips", "0", "--no-progress"])
    return os.path.join(tmp, "demo", "pretrain")


def _step_time(method: str, enc: str, kw: dict, batch: int, shards: str, steps: int, in_memory: bool) -> float:
    from models import build_encoder
    from models.objectives import build_objective, get_objective_class
    from pipeline import build_loader
    from train.optim import build_optimizer

    torch.manual_seed(0)
    cls = get_objective_class(method)
    hp = cls.default_hparams()
    obj = build_objective(method, build_encoder(enc, **kw))
    opt = build_optimizer(obj.param_groups(batch), hp)
    loader, info = build_loader([shards], cls.sampler, batch, mode="train", num_workers=1, shuffle_buffer=256,
                                sampler_kwargs={"n_frames": hp.n_frames} if cls.sampler != "views" else None)
    it = iter(loader)
    fixed = next(it)
    fixed.pop("__key__", None)

    def one(b):
        out = obj(b)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        obj.after_step()

    for _ in range(3):
        one(fixed)
    t0 = time.perf_counter()
    for _ in range(steps):
        b = fixed if in_memory else next(it)
        if info.device_transform is not None and not in_memory:
            b = info.device_transform(b)
        one(b)
    dt = (time.perf_counter() - t0) / steps
    del it, loader
    return dt


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _trainer_rate(shards: str, procs: int, steps: int, tmp: str) -> float:
    out = os.path.join(tmp, f"run{procs}")
    args = [os.path.join(ROOT, "train", "pretrain.py"), "--method", "temporal_gap", "--shards", shards, "--out", out,
            "--steps", str(steps), "--batch-size", "128", "--num-workers", "1", "--log-every", "5",
            "--save-every", str(steps), "--tracker", "none"]
    acc = os.path.join(os.path.dirname(sys.executable), "accelerate")
    if procs == 1:
        cmd = [sys.executable, *args]
        env = dict(os.environ)
    else:
        cmd = [acc, "launch", "--multi_gpu", "--num_processes", str(procs), "--num_machines", "1", "--mixed_precision",
               "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()), *args]
        env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=ROOT)
    rows = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    rates = [r["examples_per_s"] for r in rows[1:]] or [rows[-1]["examples_per_s"]]  # skip warm-up window
    return sum(rates) / len(rates)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=15)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_train_")
    shards = _shards(tmp)
    rows, ratios, rates = [], {}, {}
    for method, enc, kw, batch in CASES:
        t_mem = _step_time(method, enc, kw, batch, shards, a.steps, True)
        t_pipe = _step_time(method, enc, kw, batch, shards, a.steps, False)
        ratios[method] = t_pipe / t_mem
        rates[method] = {"pipeline_examples_per_s": batch / t_pipe, "in_memory_examples_per_s": batch / t_mem}
        rows.append([f"{method}/{enc}{kw.get('d', '')}", batch, batch / t_pipe, batch / t_mem, t_pipe / t_mem])
    print(table(rows, ["method/encoder", "batch", "pipeline ex/s", "in-memory ex/s", "pipeline/in-memory time"]))
    r1 = _trainer_rate(shards, 1, 20, tmp)
    r2 = _trainer_rate(shards, 2, 20, tmp)
    print()
    print(table([["1 process", r1, 1.0], ["2 processes (gloo)", r2, r2 / r1]],
                ["temporal_gap/mobile, global batch 128", "examples/s", "ratio"]))
    path = merge_results("train", {"pipeline_overhead_ratio": ratios, "rates": rates,
                                   "ddp1_examples_per_s": r1, "ddp2_examples_per_s": r2, "ddp2_vs_1_ratio": r2 / r1})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
