"""Add a probe to finished `make bench-methods` / `make bench-real` rows: same weights, same windows.

Each row's run, its untrained encoder and the spectrogram are scored with ``--probe`` (default ``logreg``,
``eval/logreg.py``) exactly as ``bench_methods.evaluate`` scores a new run, through the embeddings the bench
cached next to the run (``RUNS/eval_cache``; computed again when absent).  The probe's entry is merged
into each row under the results file's lock (other fields untouched); the tables and figures are then
rewritten (``--doc``: also its marked tables)::

    python bench/rescore_probe.py bench/results/methods_real.json --doc docs/bench-real.md
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import bench_methods as bm
from _common import ROOT


def rescore(row: dict, probe: str, settings: dict, data: str) -> dict:
    """``row``'s entry for ``probe`` (the run, its untrained encoder and the spectrogram)."""
    run = row["run"]
    tasks = settings["tasks"].split(",")
    cache = os.path.join(os.path.dirname(os.path.abspath(run)), "eval_cache")
    per, names, _ = bm.score_with_baselines(run, tasks, settings["window"], data, cache, (probe,))
    return bm.probe_rows(per, names, tasks, (probe,))


def merge_probe(path: str, name: str, entry: dict) -> dict:
    """Set ``rows[name][probe]`` in ``path`` under the bench's lock; returns the whole file."""
    import fcntl

    from shards.atomic import atomic_write_json

    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(path) as f:
            d = json.load(f)
        d["rows"][name].update(entry)
        atomic_write_json(path, d)
    return d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", help="a bench results file (bench/results/methods_*.json)")
    ap.add_argument("--probe", default="logreg", choices=["logreg", "linear", "knn", "mlp"])
    ap.add_argument("--rows", default=None, help="comma-separated row keys (default: every row with a run)")
    ap.add_argument("--redo", action="store_true", help="score rows that already hold the probe again")
    ap.add_argument("--data", default=os.path.join(ROOT, "data"))
    ap.add_argument("--doc", default=None, help="markdown file whose marked tables are rewritten at the end")
    a = ap.parse_args(argv)
    with open(a.results) as f:
        d = json.load(f)
    settings = d["settings"]
    want = a.rows.split(",") if a.rows else list(d["rows"])
    missing = [k for k in want if k not in d["rows"]]
    if missing:
        print(f"error: --rows: not in {a.results}: {', '.join(missing)}", file=sys.stderr)
        return 2
    for name in want:
        row = d["rows"][name]
        if not row.get("run") or not os.path.isfile(os.path.join(row["run"], "encoder.json")):
            print(f"skip {name}: no exported run ({row.get('run') or row.get('skipped', 'no run')})")
            continue
        if a.probe in row and not a.redo:
            print(f"skip {name}: already has {a.probe} (--redo scores it again)")
            continue
        t0 = time.perf_counter()
        entry = rescore(row, a.probe, settings, a.data)
        d = merge_probe(a.results, name, entry)
        du = entry[a.probe]["delta_untrained"]
        print(f"{name}: {a.probe} mean delta {100 * du['mean']:+.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    from collections import Counter

    budgets = Counter(r.get("minutes") for r in d["rows"].values() if r.get("minutes"))  # the table's budget: most rows'
    ns = argparse.Namespace(tasks=settings["tasks"], steps=None, minutes=budgets.most_common(1)[0][0] if budgets else 0.0,
                            corpus=settings.get("corpus", "basic"), out=a.results, doc=a.doc, doc_marker=None)
    bm.write_tables(d["rows"], ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
