"""How much of "trained vs untrained" is BatchNorm calibration, and how much is learning (issue 26).

The ``untrained`` baseline of ``eval`` (Tagliasacchi et al. 2019 Sec. 4 "Untrained") is the encoder with
random weights *and* BatchNorm running statistics at their initial values (mean 0, variance 1): its BN
layers are the identity.  Every trained encoder has data-driven running statistics after its first few
steps (momentum 0.1), so "trained minus untrained" mixes two things: what the weights learned, and what
calibrating BatchNorm to the data does to a random network.  This script separates them.  For one run
directory it scores, on the ``make bench-real`` tasks:

* ``untrained``: random weights (seed 0), identity BatchNorm (eval's baseline);
* ``calibrated``: the same random weights, BatchNorm statistics recomputed (cumulative average) over
  ``--crops`` random 96-frame crops of the bench-real pretraining clips, normalised as the run's input;
* ``trained``: the run's encoder.

Each through the bench's evaluation window (one centre crop of 288 frames, shorter clips padded with
``log(eps)``), then a logistic regression (scikit-learn, L2, C=1, run to convergence) on standardised
embeddings, trained on the task's train split and scored on its test split: a probe with no early stopping,
so that badly conditioned embeddings are not penalised by the optimiser.  Writes
``bench/results/untrained_bn.json`` under ``--label`` (default: the run folder's name)::

    python bench/untrained_bn.py runs/bench_methods/temporal_gap__default
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys

import numpy as np
import soundfile as sf
import torch
from _common import ROOT, merge_results

from models import build_encoder
from models.export import load_run
from shards.frontend import FrontendConfig, logmel

TASKS = ("real_instrument", "real_pitch", "real_drum", "real_language", "real_keyword", "real_speaker")


def calibrate(enc: torch.nn.Module, crops: torch.Tensor, batch: int = 64) -> torch.nn.Module:
    """BatchNorm running statistics recomputed as the plain average over ``crops`` (no gradient)."""
    for m in enc.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average
    enc.train()
    with torch.no_grad():
        for i in range(0, len(crops), batch):
            enc(crops[i:i + batch])
    return enc.eval()


def centre_window(m: np.ndarray, n: int, pad: float) -> np.ndarray:
    if m.shape[1] >= n:
        s = (m.shape[1] - n) // 2
        return m[:, s:s + n]
    out = np.full((m.shape[0], n), pad, np.float32)
    s = (n - m.shape[1]) // 2
    out[:, s:s + m.shape[1]] = m
    return out


def embed(enc: torch.nn.Module, x: np.ndarray, batch: int = 64) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([enc(torch.from_numpy(x[i:i + batch])[:, None]) for i in range(0, len(x), batch)]).numpy()


def table_md(results: dict) -> str:
    """One row per run and model (untrained / calibrated / trained): accuracy % per task and the mean."""
    rows = [(k, v) for k, v in results.items() if isinstance(v, dict) and "accuracy_pct" in v]
    tasks = [t for t in rows[0][1]["accuracy_pct"]["trained"] if t != "mean"] if rows else []
    head = "| run | encoder | step | model | " + " | ".join(t.replace("real_", "") for t in tasks) + " | mean |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for label, v in rows:
        for name in ("untrained", "calibrated", "trained"):
            r = v["accuracy_pct"][name]
            lines.append(f"| {label} | {v['encoder']} | {v['step']} | {name} | "
                         + " | ".join(f"{r[t]:.1f}" for t in tasks) + f" | {r['mean']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="run directory (encoder.json + encoder.safetensors)")
    ap.add_argument("--real", default=os.path.join(ROOT, "data", "real_audio"), help="the bench-real corpus")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--crops", type=int, default=1024, help="pretraining crops for the calibration (64-4096)")
    ap.add_argument("--window", type=int, default=288, help="evaluation window in frames")
    ap.add_argument("--label", default=None)
    ap.add_argument("--doc", default=None, help="markdown file whose table between two '<!-- untrained-bn -->' "
                    "lines is rewritten from every row of the results file")
    a = ap.parse_args(argv)
    if not 64 <= a.crops <= 4096 or not 32 <= a.window <= 1024:
        print("error: --crops must be 64-4096 and --window 32-1024", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    try:
        trained, meta = load_run(a.run)
    except (OSError, ValueError) as e:
        print(f"error: {a.run}: {e}", file=sys.stderr)
        return 2
    fe = FrontendConfig(**meta["frontend"])
    norm = meta.get("input_norm") or {"mean": 0.0, "std": 1.0}
    mu, sd = float(norm["mean"]), float(norm["std"])
    files = sorted(glob.glob(os.path.join(a.real, "pretrain", "*", "*.wav")))
    if not files:
        print(f"error: {a.real}: no pretraining clips (run `make bench-real`)", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    mels = [logmel(sf.read(f, dtype="float32")[0], fe).astype(np.float32) for f in rng.permutation(files)[:256]]
    crops = []
    for k in range(a.crops):
        m = mels[k % len(mels)]
        s = int(rng.integers(0, max(m.shape[1] - 96, 0) + 1))
        crops.append((centre_window(m[:, s:s + 96], 96, float(np.log(fe.eps))) - mu) / sd)
    torch.manual_seed(0)
    untrained = build_encoder(meta["encoder"], **meta["kwargs"]).eval()
    torch.manual_seed(0)
    calibrated = calibrate(build_encoder(meta["encoder"], **meta["kwargs"]), torch.from_numpy(np.stack(crops))[:, None])
    models = {"untrained": untrained, "calibrated": calibrated, "trained": trained}
    res: dict[str, dict[str, float]] = {k: {} for k in models}
    pad = float(np.log(fe.eps))
    for t in a.tasks.split(","):
        path = os.path.join(a.real, "tasks", f"{t}.csv")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        x = np.stack([centre_window(logmel(sf.read(os.path.join(a.real, "tasks", r["path"]), dtype="float32")[0], fe),
                                    a.window, pad) for r in rows]).astype(np.float32)
        x = (x - mu) / sd
        y = np.array([r["label"] for r in rows])
        split = np.array([r["split"] for r in rows])
        tr, te = split == "train", split == "test"
        for name, enc in models.items():
            e = embed(enc, x)
            sc = StandardScaler().fit(e[tr])
            clf = LogisticRegression(max_iter=3000).fit(sc.transform(e[tr]), y[tr])
            res[name][t] = round(100 * float(clf.score(sc.transform(e[te]), y[te])), 1)
        print(t, {k: v[t] for k, v in res.items()}, flush=True)
    for name in res:
        res[name]["mean"] = round(float(np.mean([v for k, v in res[name].items()])), 1)
    label = a.label or os.path.basename(os.path.normpath(a.run))
    out = {"run": os.path.relpath(a.run, ROOT) if os.path.abspath(a.run).startswith(ROOT) else a.run,
           "method": meta.get("method"), "step": meta.get("step"), "encoder": meta["encoder"], "kwargs": meta["kwargs"],
           "crops": a.crops, "window": a.window, "accuracy_pct": res}
    path = merge_results("untrained_bn", {label: out})
    print(path)
    if a.doc:
        from bench_methods import replace_between_markers

        with open(path) as f:
            replace_between_markers(a.doc, "<!-- untrained-bn -->", "\n" + table_md(json.load(f)) + "\n")
    for name, r in res.items():
        print(f"{name:10s} " + " ".join(f"{k.replace('real_', '')} {v:5.1f}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
