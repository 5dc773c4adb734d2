"""Probe gain over the untrained encoder as a function of training steps, from one run (issue 26).

``make bench-real`` scores each method once, at the end of its 20 minutes.  This traces the curve: it trains
METHOD in segments (``train --steps S_k --resume``, the same run directory), copies the exported encoder
after each segment to ``OUT/snapshots/step_S_k``, then scores every snapshot with the bench-real protocol
(``bench_methods.evaluate``: linear probe and kNN on the real tasks, paired with the same encoder untrained).
Only methods with a constant lr and no schedule of their own are accepted (their segmented run
follows the continuous one); the data stream
is re-seeded at each segment boundary, as at every checkpoint.  Rows are merged into
``bench/results/probe_curve.json`` under ``--label``; the figure (mean and per-task delta against steps,
95 % interval of the mean shaded) goes to ``--png``::

    python bench/probe_curve.py --method temporal_gap --steps 2000,4000,6000,8000 --out runs/tg_curve \\
        --label temporal_gap_mobile --png docs/img/temporal_gap_real_probe_curve.png
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import bench_methods as bm
from _common import ROOT, merge_results
from methods_plots import save_png, short_task

MAX_SEGMENTS = 64
EXPORT = ("encoder.json", "encoder.safetensors", "config.yaml", "run_summary.json")


def parse_steps(text: str) -> list[int]:
    """``"2000,4000"`` -> ``[2000, 4000]``: strictly increasing positive integers, at most MAX_SEGMENTS."""
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"error: --steps: expected comma-separated integers, got {text!r}") from None
    if not steps or len(steps) > MAX_SEGMENTS:
        raise SystemExit(f"error: --steps: expected 1 to {MAX_SEGMENTS} values, got {len(steps)}")
    if steps[0] < 1 or any(b <= a for a, b in zip(steps, steps[1:])):
        raise SystemExit(f"error: --steps: expected strictly increasing positive steps, got {text!r}")
    return steps


def train_segment(a: argparse.Namespace, run: str, steps: int, resume: bool) -> None:
    from models import ENCODERS
    from models.objectives import OBJECTIVES
    from train.config import load_config
    from train.loop import train

    argv = ["--method", a.method, "--shards", os.path.join(a.data, bm.CORPORA["real"][0], "pretrain"),
            "--out", run, "--batch-size", str(a.batch), "--seed", str(a.seed), "--num-workers", "1",
            "--steps", str(steps), "--save-every", "1000000", "--keep-last", "1", "--log-every", "10",
            "--tracker", "none"] + (["--resume"] if resume else [])
    for item in a.hp:
        argv += ["--hp", item]
    cfg = load_config(argv, sorted(OBJECTIVES), sorted(ENCODERS))
    train(cfg)


def snapshot(run: str, dest: str) -> str:
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in EXPORT:
        if os.path.exists(os.path.join(run, name)):
            shutil.copy2(os.path.join(run, name), os.path.join(tmp, name))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def plot(points: list[dict], tasks: list[str], path: str, title: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    xs = [p["step"] for p in points]
    for t in tasks:
        ax.plot(xs, [100 * p["linear"]["per_task"][t]["delta"]["mean"] for p in points], lw=0.9, alpha=0.7,
                marker=".", label=short_task(t))
    mean = [100 * p["linear"]["delta_untrained"]["mean"] for p in points]
    ci = [100 * (p["linear"]["delta_untrained"]["ci95"] or 0.0) for p in points]
    ax.fill_between(xs, [m - c for m, c in zip(mean, ci)], [m + c for m, c in zip(mean, ci)], color="black", alpha=0.12)
    ax.plot(xs, mean, color="black", lw=2.2, marker="o", label="mean")
    ax.axhline(0, color="grey", ls="--", lw=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("linear probe: trained - untrained (points)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=4)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", default="temporal_gap")
    ap.add_argument("--steps", required=True, help="comma-separated step counts at which to snapshot and score")
    ap.add_argument("--out", required=True, help="run directory (and its snapshots/)")
    ap.add_argument("--label", default=None, help="key in bench/results/probe_curve.json (default: METHOD)")
    ap.add_argument("--png", default=None, help="where to write the figure")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--data", default=os.path.join(ROOT, "data"))
    ap.add_argument("--eval-only", action="store_true", help="score the snapshots already in OUT/snapshots")
    a = ap.parse_args(argv)
    steps = parse_steps(a.steps)
    if not 1 <= a.batch <= 4096:
        raise SystemExit(f"error: --batch: expected 1..4096, got {a.batch}")
    from models.objectives import get_objective_class
    from models.objectives.base import Objective

    cls = get_objective_class(a.method)
    if (getattr(cls.HParams, "schedule", "constant") != "constant" or any(h.split("=", 1)[0] == "schedule" for h in a.hp)
            or cls.set_total_steps is not Objective.set_total_steps):  # e.g. an EMA ramp planned over the run
        raise SystemExit(f"error: --method {a.method}: its lr schedule is not constant; a segmented run would not "
                         "follow the continuous one")
    run, snaps = os.path.abspath(a.out), os.path.join(os.path.abspath(a.out), "snapshots")
    if not a.eval_only:
        for i, s in enumerate(steps):
            t0 = time.perf_counter()
            train_segment(a, os.path.join(run, "run"), s, resume=i > 0)
            snapshot(os.path.join(run, "run"), os.path.join(snaps, f"step_{s:07d}"))
            print(f"step {s}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
    tasks = bm.CORPORA["real"][1]
    ns = argparse.Namespace(tasks=tasks, data=a.data, window="crop:288", runs=run)
    points = []
    for s in steps:
        snap = os.path.join(snaps, f"step_{s:07d}")
        if not os.path.isfile(os.path.join(snap, "encoder.json")):
            raise SystemExit(f"error: {snap}: no exported encoder (train that segment first)")
        row = bm.evaluate(snap, ns)
        row["step"] = s
        points.append(row)
        li = row["linear"]
        print(f"step {s}: linear delta {100 * li['delta_untrained']['mean']:+.1f} ± "
              f"{100 * (li['delta_untrained']['ci95'] or 0):.1f}  " + "  ".join(
                  f"{short_task(t)} {100 * v['delta']['mean']:+.1f}" for t, v in li["per_task"].items()), flush=True)
    label = a.label or a.method
    print(f"written {merge_results('probe_curve', {label: {'method': a.method, 'batch': a.batch, 'seed': a.seed, 'hp': a.hp, 'points': points}})}")
    if a.png:
        print(f"figure {plot(points, tasks.split(','), a.png, f'{a.method}, batch {a.batch}, seed {a.seed}: bench-real linear probe')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
