"""`make bench-methods`: does every method learn?  Same wall-clock budget, then the same probes.

For every method of the objectives registry (``models.objectives.OBJECTIVES``: methods added later
are picked up), on its default encoder and on one shared small encoder (``audio_ntt`` d=512):
``default`` is the objective's ``small_config`` where it declares one (a CPU-sized setting, e.g. a ViT-Tiny on
96 frames with a scaled-down decoder; marked ``[small_config]`` in the table), else its paper encoder;
``shared`` is skipped, with the reason recorded, when the objective's ``check`` refuses ``audio_ntt`` (the
masked-patch methods need a ViT patch encoder).  ``--hp KEY=VALUE`` overrides a hyperparameter of every
selected method (recorded in the row's ``hparams``).

``--corpus``: ``varied`` (default; ``data/demo_varied``, ``make shards-varied``: six families with noise,
reverb and level nuisances, train/test sources disjoint, tasks ``demo_varied_{family,timbre,pitch}``) or
``basic`` (``data/demo``, ``make shards``: the clean four-family corpus, tasks ``demo_{family,pitch,timbre}``)
or ``real`` (``data/real`` + ``data/real_audio``, ``make bench-real``: third-party audio from Debian packages,
bench/real_corpus.py, six ``real_*`` tasks with held-out voices, programs and kits; docs/bench-real.md).
Results go to ``bench/results/methods_varied.json``, ``methods.json`` or ``methods_real.json``; rows of
different corpora are never merged into one file.  Every row also carries the linear probe per task
(trained, untrained, paired delta); ``--doc FILE`` writes that per-task table between the
``<!-- bench-methods:per-task -->`` markers of FILE, and ``<out>.md`` always gets both tables.

1. pretrain on the corpus' pretraining shards for ``--minutes`` of wall clock (``--max-minutes``; the
   lr schedule is planned from the measured steps/s, train/budget.py), at the bench batch below and
   otherwise the paper's hyperparameters;
2. score the exported encoder with the linear probe and kNN on the demo tasks, next to the same
   encoder untrained (same seed 0, frontend and input norm: ``eval``'s ``untrained`` baseline copies
   them from the run) and the spectrogram baseline.

Evaluation windows: one centre crop of 288 frames (3 s) per clip (``--window crop:288``): about a
seventh of the encoder work of ``eval run``'s 96-frame sliding windows (hop 48) over the 10-s clips,
which took 2-4 minutes per run here; ``--window sliding:96`` gives the ``make demo`` protocol.

"probe mean" = the mean over the tasks.  Linear: per probe seed the mean over tasks, then mean and
95 % t-interval over the 5 seeds; delta vs untrained is paired by seed (the same seeds and folds).
kNN and ``logreg`` are deterministic: a model's interval combines the tasks' test-set intervals in
quadrature, and its delta vs untrained is paired over the test clips (per clip, correct minus correct:
``eval.metrics.paired_ci95``; results scored before per-clip correctness was stored: unpaired).  A row
whose linear-probe mean does not exceed the untrained one is flagged ``NO``; ``~`` when the paired
interval includes 0.  The intervals cover probe seeds and test sampling, not pretraining seeds.

Bench batch: the papers' batches (256 to 4096) would give a handful of steps on 2 CPU cores, so
every method uses 64 (the ``make demo`` batch), 16 on ``slowfast_nfnet_f0`` (63 M parameters at
300 frames).  The default encoder's ``n_mels`` follows the shards (64; SimCLR's paper uses 80).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field

from _common import RESULTS, ROOT

SHARED = ("audio_ntt", {"d": 512})
TASKS = "demo_family,demo_pitch,demo_timbre"
# corpus -> (shard folder under --data, default tasks, default results file, how to build the shards)
CORPORA = {"basic": ("demo", TASKS, "methods.json", "make shards"),
           "varied": ("demo_varied", "demo_varied_family,demo_varied_timbre,demo_varied_pitch", "methods_varied.json",
                      "make shards-varied"),
           "real": ("real", ",".join(f"real_{t}" for t in ("instrument", "pitch", "drum", "language", "keyword", "speaker")),
                    "methods_real.json", "make bench-real")}
BATCH = {"slowfast_nfnet_f0": 16}
DEFAULT_BATCH = 64
PROTOCOLS = ("linear", "logreg", "knn")  # every row's probes (eval/probes.py, eval/logreg.py)
PER_TASK = ("linear", "logreg")  # probes with a per-task table


@dataclass
class Variant:
    """One bench run of a method: ``name`` (``default`` / ``shared``), encoder and kwargs, hyperparameter
    overrides, where the setting comes from (``config``), and ``skip`` (the reason) when it cannot run."""

    name: str
    encoder: str
    kwargs: dict
    hparams: dict = field(default_factory=dict)
    config: str = "paper"
    skip: str | None = None
    batch: int | None = None  # the small_config's batch, when it names one

    @property
    def label(self) -> str:
        tag = "" if self.config == "paper" else f" [{self.config}]" if self.name == "default" else \
            f" [{self.config} hparams]" if self.hparams else ""
        return self.encoder + "".join(f" {k}={v}" for k, v in self.kwargs.items()) + tag


def variants(method: str, n_mels: int) -> list[Variant]:
    """The method's ``default`` variant, then the ``shared`` encoder when different.

    ``default`` is the objective's ``small_config`` when it has one (a CPU-sized setting: encoder, its kwargs
    and hyperparameter overrides), else its paper encoder ``default_encoder``.  ``shared`` is skipped, with
    the objective's one-line reason, when its ``check`` refuses that encoder (e.g. a method that needs a
    ViT patch encoder)."""
    from models import build_encoder
    from models.objectives import get_objective_class

    cls = get_objective_class(method)
    small = getattr(cls, "small_config", None) or {}
    if small:
        name, kw, hp, config = small["encoder"], dict(small.get("encoder_kwargs") or {}), \
            dict(small.get("hparams") or {}), "small_config"
    else:
        name, kw, hp, config = *cls.default_encoder, {}, "paper"
    kw = {k: (n_mels if k == "n_mels" else v) for k, v in kw.items()}  # follow the shards' mel bins
    out = [Variant("default", name, kw, hp, config, batch=small.get("batch"))]
    if (name, kw) != SHARED:
        shared = Variant("shared", SHARED[0], dict(SHARED[1]), hp, config)
        try:
            cls.check(build_encoder(SHARED[0], **SHARED[1], n_mels=n_mels), n_frames=hp.get("n_frames"))
        except ValueError as e:
            shared.skip = str(e).splitlines()[0] if str(e) else "refused by the objective's check"
        out.append(shared)
    return out


def _t_ci(vals: list[float]) -> tuple[float, float | None]:
    sys.path.insert(0, ROOT)
    from eval import metrics as M

    m, ci = M.t_ci95(vals)
    return float(m), (None if ci is None else float(ci))


def probe_mean(res: dict, tasks: list[str], probe: str) -> dict:
    """Mean over tasks of one model's probe results, with a CI (see the module docstring)."""
    rows = [res[t][probe] for t in tasks]
    seeds = [r.get("per_seed") or [] for r in rows]
    if len({len(s) for s in seeds}) == 1 and len(seeds[0]) > 1:
        per_seed = [sum(s[i] for s in seeds) / len(seeds) for i in range(len(seeds[0]))]
        m, ci = _t_ci(per_seed)
        return {"mean": m, "ci95": ci, "per_seed": per_seed, "per_task": {t: r["mean"] for t, r in zip(tasks, rows)}}
    m = sum(r["mean"] for r in rows) / len(rows)
    cis = [r.get("ci95") for r in rows]
    ci = None if any(c is None for c in cis) else math.sqrt(sum(c * c for c in cis)) / len(cis)
    return {"mean": m, "ci95": ci, "per_task": {t: r["mean"] for t, r in zip(tasks, rows)}}


def delta(a: dict, b: dict) -> dict:
    """a - b with its 95 % interval and how it was paired (``paired``):

    * ``seeds``: both have several per-seed values (a repeated probe): t over the per-seed differences;
    * ``clips``: a deterministic probe on the same test clips (equal ``test_key``): the interval of the
      mean per-clip difference in correctness (``eval.metrics.paired_ci95``);
    * ``tasks``: a mean over tasks of per-task deltas (``mean_delta``);
    * ``no``: the two intervals combined as if independent, which is wider than a paired one."""
    if a.get("per_seed") and b.get("per_seed") and len(a["per_seed"]) == len(b["per_seed"]) > 1:
        m, ci = _t_ci([x - y for x, y in zip(a["per_seed"], b["per_seed"])])
        return {"mean": m, "ci95": ci, "paired": "seeds"}
    if a.get("correct") and a.get("test_key") and a.get("test_key") == b.get("test_key"):
        from eval import metrics as M

        ci = M.paired_ci95(a["correct"], b.get("correct") or "")
        if ci is not None:
            return {"mean": a["mean"] - b["mean"], "ci95": ci, "paired": "clips"}
    ci = None if a.get("ci95") is None or b.get("ci95") is None else math.hypot(a["ci95"], b["ci95"])
    return {"mean": a["mean"] - b["mean"], "ci95": ci, "paired": "no"}


def mean_delta(per_task: list[dict]) -> dict:
    """Mean of per-task deltas that are each paired by clips (tasks independent: the half-widths add in
    quadrature, divided by the number of tasks)."""
    cis = [d["ci95"] for d in per_task]
    ci = None if any(c is None for c in cis) else math.sqrt(sum(c * c for c in cis)) / len(cis)
    return {"mean": sum(d["mean"] for d in per_task) / len(per_task), "ci95": ci, "paired": "tasks"}


def probe_rows(per: dict, names: list[str], tasks: list[str], protocols: tuple[str, ...] = PROTOCOLS) -> dict:
    """Per probe: the trained / untrained / spectrogram means over tasks, the delta, and (``PER_TASK``
    probes) trained, untrained and delta per task.  ``names``: the run, its untrained encoder, the spectrogram."""
    out: dict = {}
    for probe in protocols:
        tr, un, sp = (probe_mean(per[n], tasks, probe) for n in names)
        task_d = {t: delta(per[names[0]][t][probe], per[names[1]][t][probe]) for t in tasks}
        mean_d = delta(tr, un)
        if mean_d["paired"] == "no" and all(d["paired"] == "clips" for d in task_d.values()):
            mean_d = mean_delta(list(task_d.values()))
        out[probe] = {"trained": tr, "untrained": un, "spectrogram": sp, "delta_untrained": mean_d}
        if probe in PER_TASK:
            out[probe]["per_task"] = {t: {"trained": per[names[0]][t][probe]["mean"],
                                          "untrained": per[names[1]][t][probe]["mean"],
                                          "delta": task_d[t]} for t in tasks}
    return out


def run_one(method: str, v: Variant, a: argparse.Namespace, hp: dict) -> dict:
    from models import ENCODERS
    from models.objectives import OBJECTIVES
    from train.config import load_config
    from train.loop import train

    enc, kw = v.encoder, v.kwargs
    out = os.path.join(a.runs, f"{method}__{v.name}" + (f"__{a.tag}" if a.tag else ""))
    shutil.rmtree(out, ignore_errors=True)
    batch = a.batch or v.batch or BATCH.get(enc, DEFAULT_BATCH)
    argv = ["--method", method, "--encoder", enc, "--shards", os.path.join(a.data, CORPORA[a.corpus][0], "pretrain"),
            "--out", out, "--batch-size", str(batch), "--seed", str(a.seed),
            "--num-workers", str(a.workers), "--save-every", "1000000", "--keep-last", "1", "--log-every", "10",
            "--tracker", "none"]
    argv += ["--steps", str(a.steps)] if a.steps else ["--max-minutes", str(a.minutes)]
    for k, x in kw.items():
        argv += ["--encoder-arg", f"{k}={x}"]
    for k, x in hp.items():
        argv += ["--hp", f"{k}={x}"]
    for item in a.sampler_arg:
        argv += ["--sampler-arg", item]
    cfg = load_config(argv, sorted(OBJECTIVES), sorted(ENCODERS))
    t0 = time.perf_counter()
    s = train(cfg)
    wall = time.perf_counter() - t0
    summ = json.load(open(os.path.join(out, "run_summary.json")))
    return {"run": os.path.relpath(out, ROOT) if out.startswith(ROOT) else out, "steps": s["step"], "stopped_by": s["stopped_by"], "batch": batch,
            "planned_steps": summ.get("planned_steps"), "train_wall_s": round(wall, 1),
            "examples_per_s": s["step"] * batch / max(summ.get("elapsed_s") or wall, 1e-9),
            "final_loss": s["losses"][-1] if s["losses"] else None,
            "first_loss": s["losses"][0] if s["losses"] else None}


BASELINES: dict[str, dict] = {}  # baseline hash -> per-task results (the same for every run that shares it)


def score_with_baselines(run: str, tasks: list[str], window: str, data: str, cache_dir: str,
                         protocols: tuple[str, ...] = PROTOCOLS) -> tuple[dict, list[str], list[str]]:
    """Per-task results of the run, its untrained encoder and the spectrogram under ``protocols``, the three
    model names and hashes; a baseline is scored once per (hash, protocols) in this process and reused."""
    from eval.runner import RunOptions, resolve_models
    from eval.runner import evaluate as ev

    models = resolve_models([run, "untrained", "spectrogram"])
    mode, _, frames = window.partition(":")
    o = RunOptions(tasks=tasks, data_root=data, protocols=protocols, window_mode=mode,
                   window_frames=int(frames) if frames else None, cache_dir=cache_dir, progress=False)
    hashes = [m.frozen.model_hash() for m in models]
    keys = [f"{','.join(protocols)}:{h}" for h in hashes]
    todo = [m for m, k in zip(models, keys) if m.kind == "run" or k not in BASELINES]
    res = ev(todo, o)
    per = {}
    for m, k in zip(models, keys):
        if m.kind == "run" or k not in BASELINES:
            per[m.name] = res["models"][m.name]["results"]
            if m.kind != "run":
                BASELINES[k] = per[m.name]
        else:
            per[m.name] = BASELINES[k]
    return per, [m.name for m in models], hashes


def evaluate(run: str, a: argparse.Namespace) -> dict:
    """Every ``PROTOCOLS`` probe of the run, its untrained encoder and the spectrogram; baselines scored once
    per (encoder, kwargs, seed, input norm) and reused."""
    tasks = a.tasks.split(",")
    t0 = time.perf_counter()
    per, names, hashes = score_with_baselines(run, tasks, a.window, a.data, os.path.join(a.runs, "eval_cache"))
    row: dict = {"eval_s": round(time.perf_counter() - t0, 1), "untrained_hash": hashes[1]}
    row.update(probe_rows(per, names, tasks))
    d = row["linear"]["delta_untrained"]
    row["beats_untrained"] = "NO" if d["mean"] <= 0 else ("~" if d["ci95"] is not None and d["mean"] - d["ci95"] <= 0
                                                          else "yes")
    return row


def save_row(path: str, key: str, row: dict, a: argparse.Namespace) -> dict:
    """Merge one row into the results file under a lock (other rows, e.g. of a concurrent or earlier
    partial run, are kept); returns all rows."""
    import fcntl

    from shards.atomic import atomic_write_json

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = {}
        if os.path.exists(path):
            with open(path) as f:
                old = json.load(f)
            corpus = (old.get("settings") or {}).get("corpus", "basic")
            if corpus != a.corpus:
                raise ValueError(f"{path} holds rows of the {corpus} corpus, not {a.corpus}: pass another --out")
            rows = old.get("rows", {})
        rows[key] = row
        atomic_write_json(path, {"rows": rows, "machine": machine(), "settings": {
            "tasks": a.tasks, "window": a.window, "shared_encoder": list(SHARED), "default_batch": DEFAULT_BATCH,
            "batch_by_encoder": BATCH, "corpus": a.corpus, "data": f"{CORPORA[a.corpus][0]}/pretrain"}})
    return rows


def machine() -> dict:
    import platform

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def _pm(r: dict) -> str:
    return f"{r['mean']:.3f}" + (f" ± {r['ci95']:.3f}" if r.get("ci95") is not None else "")


def _name(r: dict) -> str:
    return r["method"] + (f" ({r['tag']})" if r.get("tag") else "")


def markdown(rows: dict) -> str:
    head = ("| method | encoder | batch | steps | ex/s | linear: trained | untrained | spectrogram | Δ vs untrained "
            "| kNN: trained | untrained | beats untrained |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for key in sorted(rows, key=lambda k: (k.split("/")[0], k.split("/")[1] != "default")):
        r = rows[key]
        if "skipped" in r:
            lines.append(f"| {r['method']} | {r['encoder_label']} | | skipped: {r['skipped']} |")
            continue
        if "linear" not in r:
            lines.append(f"| {r['method']} | {r['encoder_label']} | {r.get('batch', '')} | failed: {r.get('error', '')} |")
            continue
        li, kn = r["linear"], r["knn"]
        lines.append(f"| {_name(r)} | {r['encoder_label']} | {r['batch']} | {r['steps']} | {r['examples_per_s']:.0f} "
                     f"| {_pm(li['trained'])} | {_pm(li['untrained'])} | {_pm(li['spectrogram'])} "
                     f"| {li['delta_untrained']['mean']:+.3f} ± {li['delta_untrained']['ci95'] or 0:.3f} "
                     f"| {_pm(kn['trained'])} | {_pm(kn['untrained'])} | {r['beats_untrained']} |")
    return "\n".join(lines)


def per_task_markdown(rows: dict, tasks: list[str], probe: str = "linear") -> str:
    """``probe`` accuracy per task: trained / untrained and the delta (95 % interval), then the mean."""
    short = [t.split("_", 1)[-1] if t.startswith(("real_", "demo_")) else t for t in tasks]
    head = "| method | encoder | steps | " + " | ".join(short) + " | mean |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    mixed = len(pairings(rows, probe)) > 1
    for key in sorted(rows, key=lambda k: (k.split("/")[0], k.split("/")[1] != "default")):
        r = rows[key]
        pt = (r.get(probe) or {}).get("per_task")
        if not pt or any(t not in pt for t in tasks):
            continue
        cells = [f"{100 * pt[t]['trained']:.1f} / {100 * pt[t]['untrained']:.1f} ({100 * pt[t]['delta']['mean']:+.1f}"
                 f" ± {100 * (pt[t]['delta']['ci95'] or 0):.1f})" for t in tasks]
        li = r[probe]
        mark = PAIRED_MARK if mixed and li["delta_untrained"].get("paired") == "tasks" else ""
        cells.append(f"{100 * li['trained']['mean']:.1f} / {100 * li['untrained']['mean']:.1f} "
                     f"({100 * li['delta_untrained']['mean']:+.1f} ± {100 * (li['delta_untrained']['ci95'] or 0):.1f})"
                     + mark)
        lines.append(f"| {_name(r)} | {r['encoder_label']} | {r['steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


PAIRED_MARK = " ‡"


def pairings(rows: dict, probe: str) -> set[str]:
    """How the rows' per-task deltas under ``probe`` were paired (``delta``'s ``paired`` values)."""
    return {d["delta"].get("paired", "no") for r in rows.values() if isinstance(r.get(probe), dict)
            for d in (r[probe].get("per_task") or {}).values()}


def pairing_note(rows: dict, probe: str) -> str:
    """How the per-task deltas of a deterministic probe were paired, for the table's caption."""
    kinds = pairings(rows, probe)
    how = ("paired over the test clips (per clip, trained correct minus untrained correct; the mean's "
           "interval combines the tasks' as independent)")
    if kinds == {"clips"}:
        return f"95 % interval {how}"
    if "clips" in kinds:
        return (f"95 % interval: on rows marked{PAIRED_MARK}, {how}; on the others, scored before per-clip "
                f"results were stored, the two test-set intervals combined, unpaired")
    return "the two test-set intervals combined, unpaired"


MARK_NAME = "bench-methods:per-task"
MARK = f"<!-- {MARK_NAME} -->"


def write_tables(rows: dict, a: argparse.Namespace) -> None:
    """``<out>.md`` with both tables and ``<out>_delta.png`` / ``_delta_all.png`` (per-task deltas, without /
    with the ablation rows); with ``--doc``, the per-task table between FILE's two markers, and the
    lost-task list between its two ``<!-- MARK:losses -->`` markers when it has them."""
    from shards.atomic import atomic_write_bytes

    tasks = a.tasks.split(",")
    budget = f"{f'{a.steps} steps' if a.steps else f'{a.minutes} min'} per run, corpus `{a.corpus}`."
    notes = {"linear": f"Linear probe, test accuracy %: trained / untrained (paired delta ± 95 % interval over probe "
                       f"seeds); {budget}",
             "logreg": f"Logistic regression (L2, C chosen on validation, solved to convergence), test accuracy %: "
                       f"trained / untrained (delta ± {pairing_note(rows, 'logreg')}); {budget}"}
    tables = {p: per_task_markdown(rows, tasks, p) for p in PER_TASK}
    base = os.path.splitext(a.out)[0]
    body = "\n\n".join(f"{notes[p]}\n\n{tables[p]}" for p in PER_TASK)
    atomic_write_bytes(base + ".md", f"{body}\n\n{markdown(rows)}\n".encode())
    from methods_plots import heatmap, losses_markdown

    heatmap(rows, tasks, base + "_delta.png", tagged=False)  # the per-task deltas as a figure (README, docs)
    heatmap(rows, tasks, base + "_delta_all.png")  # with the ablation (--tag) rows
    heatmap(rows, tasks, base + "_delta_logreg.png", tagged=False, probe="logreg")
    if not a.doc:
        return
    marker = getattr(a, "doc_marker", None) or MARK_NAME
    with open(a.doc, encoding="utf-8") as f:
        text = f.read()
    for p in PER_TASK:  # linear: MARK, logreg: MARK:logreg (when the doc has that pair of markers)
        m = marker if p == "linear" else f"{marker}:{p}"
        if p == "linear" or text.count(f"<!-- {m} -->") == 2:
            replace_between_markers(a.doc, f"<!-- {m} -->", f"\n{notes[p]}\n\n{tables[p]}\n")
        if text.count(f"<!-- {m}:losses -->") == 2:  # every task a row loses to its untrained encoder
            replace_between_markers(a.doc, f"<!-- {m}:losses -->", f"\n{losses_markdown(rows, tasks, p)}\n")


def replace_between_markers(doc: str, mark: str, body: str) -> None:
    """Replace the text between the two ``mark`` lines of ``doc`` (atomic write)."""
    from shards.atomic import atomic_write_bytes

    with open(doc, encoding="utf-8") as f:
        text = f.read()
    parts = text.split(mark)
    if len(parts) != 3:
        raise ValueError(f"{doc}: expected two {mark} markers around the table, found {len(parts) - 1}")
    atomic_write_bytes(doc, (parts[0] + mark + body + mark + parts[2]).encode())


def run_jobs(argv: list[str], a: argparse.Namespace) -> int:
    """``--jobs N``: the same command as N processes, job ``i`` taking every N-th run (in registry order,
    so with both variants job 0 gets the ``default`` rows and job 1 the ``shared`` ones), each with
    ``cores // N`` torch threads; rows merge into one file under its lock.  Prints the table at the end."""
    import subprocess

    threads = str(max(1, (os.cpu_count() or 1) // a.jobs))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv, "--job-index", str(i)], env=env)
             for i in range(a.jobs)]
    codes = [p.wait() for p in procs]
    with open(a.out) as f:
        rows = json.load(f)["rows"]
    write_tables(rows, a)
    print(f"\n{per_task_markdown(rows, a.tasks.split(','))}\n\n{markdown(rows)}\n\n{a.jobs} jobs, "
          f"total {time.perf_counter() - t0:.0f} s")
    return max(codes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=4.0, help="wall-clock pretraining budget per run")
    ap.add_argument("--methods", default="all", help="comma-separated methods (default: every registered one)")
    ap.add_argument("--variants", default="default,shared", help="default (paper encoder), shared (audio_ntt d=512)")
    ap.add_argument("--data", default=os.path.join(ROOT, "data"))
    ap.add_argument("--runs", default=os.path.join(ROOT, "runs", "bench_methods"))
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="varied",
                    help="pretraining shards and tasks: varied (data/demo_varied, make shards-varied), basic "
                         "(data/demo, make shards) or real (data/real + data/real_audio, make bench-real)")
    ap.add_argument("--doc", default=None, help="markdown file whose per-task table (between two "
                    "'<!-- bench-methods:per-task -->' markers) is replaced at the end")
    ap.add_argument("--doc-marker", default=MARK_NAME, help="name of the --doc markers: '<!-- NAME -->' (several "
                    "tables in one doc)")
    ap.add_argument("--tasks", default=None, help="comma-separated tasks (default: the corpus' three demo tasks)")
    ap.add_argument("--window", default="crop:288",
                    help="eval windows: crop:FRAMES (one centre crop per clip) or sliding:FRAMES (eval run's default)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="runs side by side, each a process with cores // jobs torch threads (default: 2 on a "
                         "machine with 2+ cores); a run's budget is wall clock, so jobs share the machine")
    ap.add_argument("--job-index", type=int, default=None, help=argparse.SUPPRESS)  # set for the job processes
    ap.add_argument("--out", default=None, help="results JSON (default bench/results/methods_varied.json, basic: "
                    "methods.json, real: methods_real.json)")
    ap.add_argument("--steps", type=int, default=None,
                    help="train a fixed number of steps instead of --minutes (ablations that must not depend on load)")
    ap.add_argument("--sampler-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="sampler argument for every selected run (e.g. alpha=0.1 for byol_a's mixup)")
    ap.add_argument("--tag", default="", help="suffix of the row key and run folder: several settings of one "
                    "method side by side in one results file (ablations)")
    ap.add_argument("--seed", type=int, default=0, help="pretraining seed")
    ap.add_argument("--batch", type=int, default=None, help="batch of every selected run (default: the method's "
                    "small_config batch, else 64; 16 on slowfast_nfnet_f0)")
    ap.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                    help="hyperparameter override for every selected method, on top of its small_config "
                         "(recorded in each row's hparams); e.g. a short-run EMA schedule")
    a = ap.parse_args(argv)
    shard_dir, tasks, out, build = CORPORA[a.corpus]
    a.tasks = a.tasks or tasks
    a.out = a.out or os.path.join(RESULTS, out)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if os.path.exists(a.out):
        try:
            with open(a.out) as f:
                old_corpus = (json.load(f).get("settings") or {}).get("corpus", "basic")
        except (OSError, ValueError) as e:
            print(f"error: cannot read {a.out}: {e}", file=sys.stderr)
            return 2
        if old_corpus != a.corpus:
            print(f"error: {a.out} holds rows of the {old_corpus} corpus, not {a.corpus}: pass another --out",
                  file=sys.stderr)
            return 2
    sys.path.insert(0, ROOT)
    from models.objectives import OBJECTIVES
    if not os.path.isfile(os.path.join(a.data, shard_dir, "pretrain", "manifest.json")):
        print(f"error: no pretraining shards under {a.data}/{shard_dir} (run `{build}`)", file=sys.stderr)
        return 2
    methods = sorted(OBJECTIVES) if a.methods == "all" else a.methods.split(",")
    unknown = sorted(set(methods) - set(OBJECTIVES))
    if unknown:
        print(f"error: unknown methods {unknown}; choose from {sorted(OBJECTIVES)}", file=sys.stderr)
        return 2
    want = set(a.variants.split(","))
    extra_hp: dict = {}
    for item in a.hp:
        k, eq, val = item.partition("=")
        if not eq or not k:
            print(f"error: --hp expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        extra_hp[k] = val
    from pipeline import read_manifests

    if a.jobs < 1 or (a.job_index is not None and not 0 <= a.job_index < a.jobs):
        print(f"error: --jobs must be >= 1 (got {a.jobs})", file=sys.stderr)
        return 2
    if a.jobs > 1 and a.job_index is None:
        return run_jobs(argv if argv is not None else sys.argv[1:], a)
    facts = read_manifests([os.path.join(a.data, shard_dir, "pretrain")])
    n_mels = int(facts.n_mels)
    rows: dict = {}
    t_all = time.perf_counter()
    todo = [(m, v) for m in methods for v in variants(m, n_mels) if v.name in want]
    for i, (method, v) in enumerate(todo):
        if a.job_index is not None and i % a.jobs != a.job_index:
            continue
        key = f"{method}/{v.name}" + (f"@{a.tag}" if a.tag else "")
        hp = {**v.hparams, **extra_hp}
        row = {"method": method, "variant": v.name, "encoder": v.encoder, "encoder_kwargs": v.kwargs,
               "encoder_label": v.label, "config": v.config, "hparams": hp, "minutes": a.minutes,
               "fixed_steps": a.steps, "sampler_args": list(a.sampler_arg), "tag": a.tag, "seed": a.seed}
        if "labels" in OBJECTIVES[method].batch_keys and not facts.vocabulary:
            v.skip = "needs labelled pretraining shards; these carry none (a supervised baseline, not self-supervised)"
        if v.skip:
            row["skipped"] = v.skip
            print(f"== {key}: {v.label}: skipped ({v.skip})", flush=True)
            rows = save_row(a.out, key, row, a)
            continue
        print(f"== {key}: {v.label}, {a.minutes} min" + (f", hp {hp}" if hp else ""), flush=True)
        try:
            row.update(run_one(method, v, a, hp))
            row.update(evaluate(os.path.join(ROOT, row["run"]), a))
        except Exception as e:  # one broken method must not cost the others their rows
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            logging.exception("%s failed", key)
        rows = save_row(a.out, key, row, a)
        if "linear" in row:
            li = row["linear"]
            print(f"   {row['steps']} steps ({row['stopped_by']}), {row['examples_per_s']:.0f} ex/s; linear "
                  f"{_pm(li['trained'])} vs untrained {_pm(li['untrained'])} (spectrogram {_pm(li['spectrogram'])}); "
                  f"beats untrained: {row['beats_untrained']}; eval {row['eval_s']} s", flush=True)
    if a.job_index is None:
        write_tables(rows, a)
    print(f"\n{per_task_markdown(rows, a.tasks.split(','))}\n\n{markdown(rows)}\n\n"
          f"total {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
