"""Figures and loss lists of the methods bench (docs/bench-real.md, issue 26).

* ``heatmap RESULTS.json``: trained minus untrained linear-probe accuracy per method and task (points), the
  cell's 95 % interval under it, in bold where the interval excludes zero; PNG next to the results
  (``--untagged``: one row per method and variant, no ablations).
* ``losses RESULTS.json``: the markdown list of every task a method loses to its untrained encoder
  (README "What was measured" takes it as is).
* ``curves LABEL=RUN_DIR ...``: the training loss of runs (``metrics.jsonl``), averaged over windows of
  steps, against a reference line (``--ref``, default ln 2 for ``temporal_gap``).

Examples::

    python bench/methods_plots.py heatmap bench/results/methods_real.json
    python bench/methods_plots.py losses bench/results/methods_real.json
    python bench/methods_plots.py curves "lr 1e-4=runs/a" "lr 1e-3=runs/b" --out docs/img/temporal_gap_loss.png
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys

from _common import ROOT

sys.path.insert(0, ROOT)

MAX_METRIC_LINES = 10_000_000  # a metrics.jsonl longer than this is not a run of this bench


def short_task(t: str) -> str:
    return t.split("_", 1)[-1] if t.startswith(("real_", "demo_")) else t


def row_label(key: str, r: dict) -> str:
    tag = f" @{r['tag']}" if r.get("tag") else ""
    return f"{r['method']} ({r['encoder']}){tag}"


def complete_rows(rows: dict, tasks: list[str], probe: str = "linear") -> list[tuple[str, dict]]:
    """Rows that hold every task's delta for ``probe``, in method order (default variant first)."""
    out = []
    for key in sorted(rows, key=lambda k: (k.split("/")[0], k.split("/")[1].split("@")[0] != "default", k)):
        pt = (rows[key].get(probe) or {}).get("per_task") or {}
        if all(t in pt and "delta" in pt[t] for t in tasks):
            out.append((key, rows[key]))
    return out


def _delta(cell: dict) -> tuple[float, float]:
    d = cell["delta"]
    return 100 * d["mean"], 100 * (d.get("ci95") or 0.0)


def delta_grid(rows: dict, tasks: list[str], tagged: bool = True, probe: str = "linear"
               ) -> tuple[list[str], list[list[tuple[float, float]]]]:
    """Labels and, per row, ``(delta, ci)`` in points for each task and then the mean; ``tagged=False``
    leaves out the ablation rows (``--tag``)."""
    labels, grid = [], []
    for key, r in complete_rows(rows, tasks, probe):
        if not tagged and r.get("tag"):
            continue
        pt = r[probe]["per_task"]
        cells = [_delta(pt[t]) for t in tasks]
        du = r[probe]["delta_untrained"]
        cells.append((100 * du["mean"], 100 * (du.get("ci95") or 0.0)))
        labels.append(row_label(key, r))
        grid.append(cells)
    return labels, grid


def save_png(fig, path: str) -> str:
    """Write a matplotlib figure to ``path`` as PNG (atomic: readers never see half a file) and close it."""
    import matplotlib.pyplot as plt

    from shards.atomic import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def heatmap(rows: dict, tasks: list[str], path: str, title: str = "", tagged: bool = True,
            probe: str = "linear") -> str | None:
    """Write the delta heatmap to ``path`` (PNG, atomic); None when no row is complete."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels, grid = delta_grid(rows, tasks, tagged, probe)
    if not grid:
        return None
    vals = np.array([[c[0] for c in g] for g in grid])
    lim = max(5.0, float(np.nanmax(np.abs(vals))))
    fig, ax = plt.subplots(figsize=(1.15 * (len(tasks) + 1) + 3.2, 0.5 * len(labels) + 1.6))
    im = ax.imshow(vals, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for i, g in enumerate(grid):
        for j, (m, ci) in enumerate(g):
            sig = abs(m) > ci and ci > 0
            ax.text(j, i, f"{m:+.1f}\n±{ci:.1f}", ha="center", va="center", fontsize=7,
                    fontweight="bold" if sig else "normal", color="white" if abs(m) > 0.6 * lim else "black")
    ax.set_xticks(range(len(tasks) + 1), [short_task(t) for t in tasks] + ["mean"])
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.axvline(len(tasks) - 0.5, color="black", lw=1)
    name = {"linear": "linear probe", "logreg": "logistic regression (C on validation)"}.get(probe, probe)
    ax.set_title(title or f"{name}: trained - untrained (points; bold: 95 % interval excludes 0)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="points")
    return save_png(fig, path)


def losses_markdown(rows: dict, tasks: list[str], probe: str = "linear") -> str:
    """One bullet per complete row: the tasks it loses to its untrained encoder, with delta ± interval;
    losses whose interval holds zero are marked ``(n.s.)``."""
    lines = []
    for key, r in complete_rows(rows, tasks, probe):
        pt = r[probe]["per_task"]
        lost = []
        for t in tasks:
            m, ci = _delta(pt[t])
            if m < 0:
                lost.append(f"{short_task(t)} {m:+.1f} ± {ci:.1f}" + ("" if m + ci < 0 else " (n.s.)"))
        du = r[probe]["delta_untrained"]
        mean = f"mean {100 * du['mean']:+.1f}"
        tag = f" @{r['tag']}" if r.get("tag") else ""
        lines.append(f"* `{r['method']}`{tag} ({r['encoder']}, {r.get('steps', '?')} steps, {mean}): "
                     + ("loses " + ", ".join(lost) if lost else "loses no task"))
    return "\n".join(lines)


def read_losses(run_dir: str, key: str = "loss") -> list[tuple[int, float]]:
    """``(step, loss)`` from a run's ``metrics.jsonl``; lines that are not finite records are skipped."""
    out = []
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n >= MAX_METRIC_LINES:
                raise ValueError(f"{run_dir}/metrics.jsonl: more than {MAX_METRIC_LINES} lines")
            try:
                rec = json.loads(line)
                step, val = int(rec["step"]), float(rec[key])
            except (ValueError, KeyError, TypeError):
                continue
            if math.isfinite(val):
                out.append((step, val))
    return out


def window_means(points: list[tuple[int, float]], window: int) -> list[tuple[float, float]]:
    """Mean step and mean loss over consecutive windows of ``window`` steps."""
    out: list[tuple[float, float]] = []
    acc: list[tuple[int, float]] = []
    for s, v in points:
        if acc and s // window != acc[0][0] // window:
            out.append((sum(p[0] for p in acc) / len(acc), sum(p[1] for p in acc) / len(acc)))
            acc = []
        acc.append((s, v))
    if acc:
        out.append((sum(p[0] for p in acc) / len(acc), sum(p[1] for p in acc) / len(acc)))
    return out


def curves(runs: list[tuple[str, str]], path: str, window: int, ref: float | None, ref_label: str,
           hlines: list[tuple[float, str]] | None = None) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label, run in runs:
        pts = window_means(read_losses(run), window)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, lw=1.4, marker="o", ms=3)
    if ref is not None:
        ax.axhline(ref, color="black", ls="--", lw=1, label=ref_label)
    for value, label in hlines or []:
        ax.axhline(value, color="grey", ls=":", lw=1.2, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss (mean over {window} steps)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def _load(path: str) -> tuple[dict, list[str]]:
    from shards.bounded import load_json_bounded

    d = load_json_bounded(path, 64 << 20, "methods-bench results")
    if not isinstance(d, dict) or not isinstance(d.get("rows"), dict):
        raise ValueError(f"{path}: not a methods-bench results file (no 'rows')")
    tasks = str((d.get("settings") or {}).get("tasks") or "").split(",")
    if not tasks or not tasks[0]:
        raise ValueError(f"{path}: its settings name no tasks")
    return d["rows"], tasks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("heatmap")
    h.add_argument("results")
    h.add_argument("--out", default=None, help="PNG (default: RESULTS with _delta.png)")
    h.add_argument("--untagged", action="store_true", help="leave out the ablation (--tag) rows")
    lo = sub.add_parser("losses")
    lo.add_argument("results")
    c = sub.add_parser("curves")
    c.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    c.add_argument("--out", required=True)
    c.add_argument("--window", type=int, default=100)
    c.add_argument("--ref", type=float, default=math.log(2))
    c.add_argument("--ref-label", default="ln 2 (constant prediction 0.5)")
    c.add_argument("--hline", action="append", default=[], metavar="VALUE=LABEL", help="another reference line")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "curves":
            if not 1 <= a.window <= 1_000_000:
                raise ValueError(f"--window must be in [1, 1000000] (got {a.window})")
            runs = []
            for item in a.runs:
                label, eq, run = item.partition("=")
                if not eq or not label or not os.path.isfile(os.path.join(run, "metrics.jsonl")):
                    raise ValueError(f"{item!r}: expected LABEL=RUN_DIR with a metrics.jsonl")
                runs.append((label, run))
            hlines = []
            for item in a.hline:
                value, eq, label = item.partition("=")
                try:
                    hlines.append((float(value), label))
                except ValueError:
                    raise ValueError(f"--hline {item!r}: expected VALUE=LABEL with a number") from None
                if not eq or not math.isfinite(hlines[-1][0]):
                    raise ValueError(f"--hline {item!r}: expected VALUE=LABEL with a finite number")
            print(curves(runs, a.out, a.window, a.ref, a.ref_label, hlines))
            return 0
        rows, tasks = _load(a.results)
        if a.cmd == "heatmap":
            out = a.out or os.path.splitext(a.results)[0] + "_delta.png"
            print(heatmap(rows, tasks, out, tagged=not a.untagged) or "no complete row: nothing drawn")
        else:
            print(losses_markdown(rows, tasks))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
