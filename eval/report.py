"""Reports: ``results.json``, ``results.csv``, ``results.md`` (+ plots), and merging reports for ``compare``.

Tables follow the papers' layout: models as rows, tasks as columns, one table per probe; each cell is
``mean ± 95 % CI`` with the normalised score in brackets (Tagliasacchi et al. 2019 Tables 2-3: 0 % =
Spectrogram, 100 % = Supervised, shown when both baselines are in the report); column headers name
each task's metric; domain averages (environment, speech, music) and their mean close the row as in
HARES (Wang et al. 2022 Table 2).  The ``supervised`` row is end to end and appears in every table.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from typing import Any, Optional

import numpy as np

from shards.atomic import atomic_write_bytes, atomic_write_json

from . import metrics as M
from .plots import bar_charts, training_curves
from .probes import PROBE_HELP
from .results_table import cell, model_kind, probes_in

RESULTS_FORMAT = "melstream-eval-results"
DOMAINS = (("environment", "Env."), ("speech", "Speech"), ("music", "Music"), ("other", "Other"))
METRIC_SHORT = {"accuracy": "acc", "mAP": "mAP"}
PROBE_TITLE = {"linear": "Linear probe", "logreg": "Logistic regression (C on validation)", "knn": "kNN (k = 10)",
               "mlp": "MLP probe (1 hidden layer)",
               "finetune": "Fine-tuning (end to end)"}


def new_results(command: Optional[list[str]] = None) -> dict[str, Any]:
    return {"format": RESULTS_FORMAT, "format_version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": list(command if command is not None else sys.argv), "tasks": {}, "models": {}}


def load_results(path: str) -> dict[str, Any]:
    p = os.path.join(path, "results.json") if os.path.isdir(path) else path
    try:
        with open(p) as f:
            r = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no results.json (run `python -m eval run ... --out {path}` first)") from None
    if r.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{p}: not a melstream evaluation report")
    return r


def merge(reports: list[tuple[str, dict]]) -> dict[str, Any]:
    """One report from several (``compare``): models keyed by name, renamed on a clash of different models."""
    out = new_results()
    for src, r in reports:
        for t, info in r["tasks"].items():
            old = out["tasks"].get(t)
            if old and old.get("protocol") != info.get("protocol"):
                print(f"warning: task {t} has protocol {old.get('protocol')} in one report and {info.get('protocol')} "
                      f"in {src}; their numbers are not comparable", file=sys.stderr)
            out["tasks"].setdefault(t, info)
        for name, m in r["models"].items():
            key = name
            if key in out["models"] and out["models"][key]["info"].get("hash") != m["info"].get("hash"):
                key = f"{name} ({os.path.basename(os.path.normpath(src))})"
            if key in out["models"]:
                for t, probes in m["results"].items():
                    out["models"][key]["results"].setdefault(t, {}).update(probes)
            else:
                out["models"][key] = json.loads(json.dumps(m))
    return out


# -- table helpers --------------------------------------------------------------------------------------

def baseline_values(r: dict, task: str, probe: str) -> tuple[Optional[float], Optional[float]]:
    spec = sup = None
    for m in r["models"].values():
        c = cell(m, task, probe)
        if c is None:
            continue
        if model_kind(m) == "spectrogram" and spec is None:
            spec = c["mean"]
        if model_kind(m) == "supervised" and sup is None:
            sup = c["mean"]
    return spec, sup


def add_normalised(r: dict) -> None:
    """Fill ``normalised`` in every result (in place) where both baselines are present."""
    for m in r["models"].values():
        for task, probes in m["results"].items():
            for probe, res in probes.items():
                if probe in ("layerwise", "supervised"):
                    continue  # supervised is the 100 % anchor; layer-wise rows are not normalised
                spec, sup = baseline_values(r, task, probe)
                res["normalised"] = M.normalised(res.get("mean"), spec, sup)


def fmt(res: Optional[dict], normalised: bool = True) -> str:
    if not res or res.get("mean") is None or res["mean"] != res["mean"]:
        return "–"
    s = f"{res['mean']:.2f}"
    if res.get("ci95") is not None:
        s += f" ± {res['ci95']:.2f}".replace("0.", ".", 1)
    if normalised and res.get("normalised") is not None:
        n = int(round(res["normalised"]))
        s += f" ({'+' if n >= 0 else ''}{n}%)"
    return s


def domain_averages(r: dict, m: dict, probe: str, tasks: list[str]) -> dict[str, Optional[float]]:
    out: dict[str, Optional[float]] = {}
    allv = []
    for dom, _ in DOMAINS:
        vals = [cell(m, t, probe)["mean"] for t in tasks if r["tasks"][t]["domain"] == dom and cell(m, t, probe)]
        vals = [v for v in vals if v is not None and v == v]
        if any(r["tasks"][t]["domain"] == dom for t in tasks):
            out[dom] = float(np.mean(vals)) if vals else None
        allv += vals
    out["all"] = float(np.mean(allv)) if allv else None
    return out


def _header(r: dict, tasks: list[str]) -> tuple[list[str], list[str]]:
    doms = [(d, lab) for d, lab in DOMAINS if any(r["tasks"][t]["domain"] == d for t in tasks)]
    cols = [f"{t} ({METRIC_SHORT.get(r['tasks'][t]['metric'], r['tasks'][t]['metric'])})" for t in tasks]
    return cols + [lab for _, lab in doms] + ["All"], [d for d, _ in doms]


def markdown(r: dict, title: str = "Evaluation") -> str:
    add_normalised(r)
    tasks = list(r["tasks"])
    lines = [f"# {title}", "", f"Created {r.get('created', '')}. Cells: mean ± 95 % CI (over seeds, or the test-set "
             "interval for deterministic probes); in brackets the normalised score, 0 % = `spectrogram`, 100 % = "
             "`supervised` (Tagliasacchi et al. 2019, Tables 2-3). Domain averages as in HARES (Wang et al. 2022, "
             "Table 2). The `supervised` row is trained end to end and repeated in every table.", "", "## Tasks", "",
             "| task | protocol | metric | domain | classes | train / valid / test | window | aggregate |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for t in tasks:
        i = r["tasks"][t]
        lines.append(f"| {t} | {i['protocol']} | {i['metric']} | {i['domain']} | {i['classes']} | "
                     f"{i.get('sizes', '')} | {i.get('window', '')} | {i.get('aggregate', '')} |")
    for t in tasks:
        for note in r["tasks"][t].get("notes", []):
            lines.append(f"\n_{t}: {note}_")
    models = r["models"]
    for probe in probes_in(r):
        cols, doms = _header(r, tasks)
        lines += ["", f"## {PROBE_TITLE.get(probe, probe)}", "", f"_{PROBE_HELP.get(probe, '')}_", "",
                  "| model | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
        ranking = []
        for name, m in models.items():
            if not any(cell(m, t, probe) for t in tasks):
                continue
            av = domain_averages(r, m, probe, tasks)
            row = []
            for t in tasks:
                c = cell(m, t, probe)
                if c is not None and model_kind(m) == "supervised":
                    spec, _ = baseline_values(r, t, probe)
                    c = {**c, "normalised": 100.0 if spec is not None else None}
                row.append(fmt(c))
            row += [f"{av[d]:.2f}" if av.get(d) is not None else "–" for d in doms]
            row.append(f"{av['all']:.2f}" if av["all"] is not None else "–")
            label = name + (" (end to end)" if model_kind(m) == "supervised" else "")
            lines.append(f"| {label} | " + " | ".join(row) + " |")
            if av["all"] is not None:
                ranking.append((av["all"], name))
        if ranking:
            ranking.sort(key=lambda x: -x[0])
            lines += ["", "Ranking (mean over tasks): " + " > ".join(f"{n} ({v:.2f})" for v, n in ranking)]
    lay = [(name, m) for name, m in models.items() if any("layerwise" in p for p in m["results"].values())]
    if lay:
        lines += ["", "## Layer-wise probing (linear probe on mean-pooled blocks; DeLoRes Table X)", "",
                  "| model | block | " + " | ".join(tasks) + " |", "| --- | --- |" + " --- |" * len(tasks)]
        for name, m in lay:
            nblocks = max(len(p.get("layerwise", {})) for p in m["results"].values())
            for b in range(nblocks):
                row = [fmt(m["results"].get(t, {}).get("layerwise", {}).get(f"block{b}"), False) for t in tasks]
                lines.append(f"| {name} | {b + 1} | " + " | ".join(row) + " |")
    lines += ["", "## Models", ""]
    for name, m in models.items():
        info = m["info"]
        desc = ", ".join(f"{k}={info[k]}" for k in ("kind", "encoder", "method", "step", "hash") if info.get(k) is not None)
        lines.append(f"- **{name}**: {desc}")
    return "\n".join(lines) + "\n"


CSV_FIELDS = ["model", "model_hash", "task", "protocol", "domain", "probe", "block", "metric", "mean", "ci95", "ci",
              "normalised", "macro_f1", "n_train", "n_valid", "n_test", "folds", "aggregate", "window"]


def csv_rows(r: dict) -> list[dict]:
    add_normalised(r)
    out = []
    for name, m in r["models"].items():
        for t, probes in m["results"].items():
            ti = r["tasks"].get(t, {})
            for probe, res in probes.items():
                items = sorted(res.items()) if probe == "layerwise" else [(None, res)]
                for block, rr in items:
                    out.append({
                        "model": name, "model_hash": m["info"].get("hash"), "task": t, "protocol": ti.get("protocol"),
                        "domain": ti.get("domain"), "probe": probe, "block": block, "metric": rr.get("metric"),
                        "mean": rr.get("mean"), "ci95": rr.get("ci95"), "ci": rr.get("ci"),
                        "normalised": rr.get("normalised"),
                        "macro_f1": (rr.get("secondary", {}).get("macro_f1") or {}).get("mean"),
                        "n_train": rr.get("n_train"), "n_valid": rr.get("n_valid"), "n_test": rr.get("n_test"),
                        "folds": rr.get("folds"), "aggregate": rr.get("aggregate"), "window": ti.get("window"),
                    })
    return out


def write_reports(r: dict, out_dir: str, title: Optional[str] = None, plots: bool = True,
                  run_dirs: Optional[dict[str, str]] = None) -> list[str]:
    """Write results.json/.csv/.md and the plots into ``out_dir``; returns the written paths."""
    os.makedirs(out_dir, exist_ok=True)
    add_normalised(r)
    written = []
    atomic_write_json(os.path.join(out_dir, "results.json"), r)
    written.append(os.path.join(out_dir, "results.json"))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    w.writerows(csv_rows(r))
    atomic_write_bytes(os.path.join(out_dir, "results.csv"), buf.getvalue().encode())
    written.append(os.path.join(out_dir, "results.csv"))
    md = markdown(r, title or f"Evaluation: {os.path.basename(os.path.normpath(out_dir))}")
    if plots:
        pngs = bar_charts(r, out_dir)
        dirs = dict(run_dirs or {})
        for name, m in r["models"].items():
            if m["info"].get("run_dir"):
                dirs.setdefault(name, m["info"]["run_dir"])
        pngs += training_curves(dirs, out_dir)
        written += pngs
        if pngs:
            md += "\n## Plots\n\n" + "\n".join(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in pngs) + "\n"
    atomic_write_bytes(os.path.join(out_dir, "results.md"), md.encode())
    written.append(os.path.join(out_dir, "results.md"))
    return written
