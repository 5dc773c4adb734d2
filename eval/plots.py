"""PNG plots (matplotlib, Agg backend): per-task bars across models, and a run's training curves.

Training curves read ``metrics.jsonl`` in the run dir: one JSON object per line with ``step``, ``loss``
and optional ``probe/<task>/<metric>`` keys written by the online probe (Tagliasacchi et al. 2019
Figure 2 tracks downstream accuracy next to the training loss).
"""
from __future__ import annotations

import json
import os
import re
from typing import Optional

import numpy as np

from .results_table import cell, probes_in

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def bar_charts(r: dict, out_dir: str) -> list[str]:
    """One PNG per probe: tasks on the x axis, one bar per model, 95 % CI as error bars."""
    plt = _plt()
    tasks = list(r["tasks"])
    out = []
    for probe in probes_in(r):
        models = [(n, m) for n, m in r["models"].items() if any(cell(m, t, probe) for t in tasks)]
        if not models or not tasks:
            continue
        fig, ax = plt.subplots(figsize=(max(4.0, 1.2 + 0.9 * len(tasks) * max(1, len(models)) ** 0.5) + 2.2, 3.6))
        width = 0.8 / len(models)
        x = np.arange(len(tasks))
        for i, (name, m) in enumerate(models):
            vals = [(cell(m, t, probe) or {}).get("mean") for t in tasks]
            errs = [(cell(m, t, probe) or {}).get("ci95") for t in tasks]
            ax.bar(x + (i - (len(models) - 1) / 2) * width, [v if v is not None else 0 for v in vals], width,
                   yerr=[e if e is not None else 0 for e in errs], capsize=2, label=name)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{t}\n({r['tasks'][t]['metric']})" for t in tasks], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("score")
        ax.set_title(f"{probe} probe" if probe != "finetune" else "fine-tuning")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        p = os.path.join(out_dir, f"bars_{probe}.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        out.append(p)
    return out


def read_metrics(path: str) -> list[dict]:
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue  # a partially written last line of a running job
            if isinstance(d, dict) and "step" in d:
                rows.append(d)
    return rows


def training_curve(run_dir: str, out_path: str, title: Optional[str] = None) -> Optional[str]:
    """Loss (left) and online-probe metrics (right) against step; ``None`` without metrics.jsonl."""
    p = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(p):
        return None
    rows = read_metrics(p)
    if not rows:
        return None
    plt = _plt()
    probe_keys = sorted({k for r in rows for k in r if k.startswith("probe/")})
    fig, axes = plt.subplots(1, 2 if probe_keys else 1, figsize=(9 if probe_keys else 5, 3.4), squeeze=False)
    ax = axes[0, 0]
    pts = [(r["step"], r["loss"]) for r in rows if isinstance(r.get("loss"), (int, float))]
    if pts:
        s, l = zip(*pts)
        ax.plot(s, l, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("training loss")
    if probe_keys:
        ax2 = axes[0, 1]
        for k in probe_keys:
            pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
            if pts:
                s, v = zip(*pts)
                ax2.plot(s, v, marker="o", ms=3, lw=1, label=k[len("probe/"):])
        ax2.set_xlabel("step")
        ax2.set_ylabel("online probe")
        ax2.set_title("online probe")
        ax2.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def training_curves(run_dirs: dict[str, str], out_dir: str) -> list[str]:
    out = []
    for name, d in run_dirs.items():
        p = training_curve(d, os.path.join(out_dir, f"curves_{_SAFE.sub('-', name)}.png"), title=name)
        if p:
            out.append(p)
    return out
