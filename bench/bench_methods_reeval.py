"""Re-score finished `make bench-methods` runs under another evaluation setting, same weights.

A check of the evaluation protocol rather than of training: each run's exported encoder is scored again
(linear probe + kNN on the demo tasks, vs the same encoder untrained and the spectrogram, exactly as
``bench_methods.evaluate``) with another ``--window`` and/or encoder constructor arguments that do not
touch the weights (``--encoder-arg long_input=chunk``: a ViT trained on 96 frames encodes a 288-frame crop
as three 96-frame chunks, M2D's evaluation practice, instead of squeezing 18 time positions into the
6 it was trained on).  The patched copy of the export goes to ``RUN__reeval`` next to the run; the
untrained baseline takes the same arguments (it copies the run's ``encoder.json``).  Results are merged
into ``bench/results/methods_reeval.json`` under ``"<run>@<window>[+args]"``.

    python bench/bench_methods_reeval.py runs/bench_methods/m2d__default --encoder-arg long_input=chunk
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import bench_methods as bm
from _common import ROOT, merge_results

EXPORT = ("encoder.json", "encoder.safetensors", "config.yaml", "run_summary.json")


def patched_copy(run: str, args: dict) -> str:
    """A copy of ``run``'s export with ``args`` merged into ``encoder.json`` ``kwargs`` (weights unchanged)."""
    from shards.atomic import atomic_write_json

    out = run.rstrip("/") + "__reeval"
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name in EXPORT:
        if os.path.exists(os.path.join(run, name)):
            shutil.copy2(os.path.join(run, name), os.path.join(out, name))
    with open(os.path.join(out, "encoder.json")) as f:
        meta = json.load(f)
    meta["kwargs"] = {**meta.get("kwargs", {}), **args}
    atomic_write_json(os.path.join(out, "encoder.json"), meta)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories written by bench_methods.py")
    ap.add_argument("--window", default="crop:288")
    ap.add_argument("--encoder-arg", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--data", default=os.path.join(ROOT, "data"))
    ap.add_argument("--tasks", default=bm.TASKS)
    a = ap.parse_args(argv)
    args = {}
    for item in a.encoder_arg:
        k, eq, v = item.partition("=")
        if not eq or not k:
            print(f"error: --encoder-arg expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        args[k] = json.loads(v) if _is_json(v) else v
    out = {}
    for run in a.runs:
        if not os.path.isfile(os.path.join(run, "encoder.json")):
            print(f"error: {run}: no encoder.json (not a finished run)", file=sys.stderr)
            return 2
        src = patched_copy(run, args) if args else run
        ns = argparse.Namespace(tasks=a.tasks, data=a.data, window=a.window,
                                runs=os.path.join(os.path.dirname(os.path.abspath(run)), "eval_cache_reeval"))
        row = bm.evaluate(os.path.abspath(src), ns)
        key = f"{os.path.relpath(os.path.abspath(run), ROOT)}@{a.window}" + "".join(f"+{k}={v}" for k, v in args.items())
        row.update({"run": os.path.relpath(os.path.abspath(run), ROOT), "window": a.window, "encoder_args": args})
        out[key] = row
        li, kn = row["linear"], row["knn"]
        print(f"{key}: linear {bm._pm(li['trained'])} vs untrained {bm._pm(li['untrained'])}, delta "
              f"{li['delta_untrained']['mean']:+.3f} ± {li['delta_untrained']['ci95'] or 0:.3f}; kNN "
              f"{bm._pm(kn['trained'])} vs {bm._pm(kn['untrained'])}; beats untrained: {row['beats_untrained']}",
              flush=True)
    print(f"written {merge_results('methods_reeval', out)}")
    return 0


def _is_json(v: str) -> bool:
    try:
        json.loads(v)
        return True
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
