"""``python -m eval {run,compare,tasks}``: evaluate encoders on downstream tasks (see ``--help``)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap

from shards.atomic import atomic_write_json
from shards.cli import cli_main
from shards.cli_types import bounded_int
from shards.frontend import DEFAULT_PRESET, get_preset

from .probes import PROBE_HELP, PROBES

# ceilings of the flags that size processes and threads (docs/robustness.md): a shared node survives a typo
MAX_WORKERS = max(4, 4 * (os.cpu_count() or 1))
MAX_THREADS = max(4, 4 * (os.cpu_count() or 1))


def _tasks_epilog() -> str:
    from .tasks import load_all

    lines = ["tasks (name: protocol -- description):"]
    for name, s in load_all().items():
        lines.append(f"  {name}: {s.protocol} [{s.metric}, {s.domain}] -- {s.description}")
    lines += ["", "protocols (--protocols):"] + [f"  {p}: {h}" for p, h in PROBE_HELP.items()]
    lines += ["", "models (--model, repeatable or comma-separated): a run dir holding encoder.json, or a baseline:",
              "  spectrogram          flattened log-mel (128-d Gaussian random projection for kNN)",
              "  untrained[:ENCODER]  the same encoder with random weights (bare: copies the run dir's encoder)",
              "  supervised[:ENCODER] the same encoder trained end to end on the task (the 100 % anchor)",
              "", "layouts and protocols in detail: docs/evaluation.md; `python -m eval tasks NAME` prints one."]
    return "\n".join(lines)


def build_parser(prog: str = "python -m eval") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description="Evaluate melstream encoders on downstream tasks.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_tasks_epilog())
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="evaluate models on tasks and write a report",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_tasks_epilog())
    r.add_argument("--model", action="append", required=True, help="run dir or baseline name (repeatable, or a,b,c)")
    r.add_argument("--tasks", required=True, help="comma-separated task names (see below)")
    r.add_argument("--data-root", default="data", help="folder holding the datasets (each in its usual folder name) "
                   "or the dataset folder itself (default: data)")
    r.add_argument("--data", action="append", default=[], metavar="TASK=PATH", help="dataset folder of one task")
    r.add_argument("--out", required=True, help="report folder (results.json/.csv/.md and PNGs)")
    r.add_argument("--protocols", default="linear,knn", help=f"comma-separated from {','.join(PROBES)} (default linear,knn)")
    r.add_argument("--seeds", type=bounded_int(1, 1000), default=5, help="seeds of the linear/MLP probes (default 5)")
    r.add_argument("--max-epochs", type=bounded_int(1, 100_000), default=200, help="linear/MLP probe epochs at most (default 200)")
    r.add_argument("--patience", type=bounded_int(0, 100_000), default=10, help="early-stopping patience in epochs (default 10)")
    r.add_argument("--k", type=bounded_int(1, 100_000), default=10, help="neighbours of the kNN probe (default 10)")
    r.add_argument("--finetune-epochs", type=bounded_int(1, 100_000), default=100,
                   help="fine-tuning / supervised epochs at most; an epoch is one random window per clip (100)")
    r.add_argument("--finetune-seeds", type=bounded_int(1, 1000), default=1, help="seeds of fine-tuning / supervised (default 1)")
    r.add_argument("--finetune-steps", type=bounded_int(1, 100_000_000), default=None, help="cap on optimiser steps per fine-tuning run")
    r.add_argument("--window-frames", type=bounded_int(1, 100_000), default=None, help="window length T in frames (task default)")
    r.add_argument("--window-mode", choices=["crop", "sliding"], default=None, help="crop or sliding (task default)")
    r.add_argument("--aggregate", choices=["mean", "naive_bayes"], default=None, help="window aggregation (task default)")
    r.add_argument("--frontend", default=None, help=f"frontend preset of the baselines when no run dir is given ({DEFAULT_PRESET})")
    r.add_argument("--limit", type=bounded_int(1, 1_000_000_000), default=None, help="at most N clips per split/fold (quick looks)")
    r.add_argument("--cache-dir", default=None, help="log-mel and embedding cache ($MELSTREAM_EVAL_CACHE or data/eval_cache)")
    r.add_argument("--batch-size", type=bounded_int(1, 65_536), default=64)
    r.add_argument("--workers", type=bounded_int(1, MAX_WORKERS), default=1, help="decode processes for task audio")
    r.add_argument("--device", default="cpu")
    r.add_argument("--threads", type=bounded_int(0, MAX_THREADS), default=0, help="torch CPU threads (0 = auto: 1 on machines with <= 2 cores, "
                   "where spinning OpenMP workers make small models several times slower; else torch's default)")
    r.add_argument("--no-plots", action="store_true")
    r.add_argument("--no-progress", action="store_true")
    c = sub.add_parser("compare", help="one table across the models of several reports")
    c.add_argument("reports", nargs="+", help="report folders (or results.json files)")
    c.add_argument("--out", default=None, help="also write the merged report (json/csv/md/plots) here")
    c.add_argument("--format", choices=["md", "csv", "json"], default="md")
    t = sub.add_parser("tasks", help="list tasks, or show one task's layout and protocol")
    t.add_argument("name", nargs="?")
    return ap


def _split_list(vals: list[str]) -> list[str]:
    return [x.strip() for v in vals for x in v.split(",") if x.strip()]


def cmd_run(a: argparse.Namespace) -> int:
    from .cache import default_cache_dir
    from .finetune import FinetuneConfig
    from .probes import ProbeConfig
    from .report import new_results, write_reports
    from .runner import RunOptions, evaluate, resolve_models
    from .tasks import get_task

    threads = a.threads or (1 if (os.cpu_count() or 1) <= 2 else 0)
    if threads > 0:
        import torch
        torch.set_num_threads(threads)
    tasks = _split_list([a.tasks])
    protocols = tuple(_split_list([a.protocols]))
    bad = [p for p in protocols if p not in PROBES]
    if bad:
        raise ValueError(f"unknown protocol(s) {bad}; choose from {list(PROBES)}")
    for t in tasks:
        get_task(t)
    data = {}
    for d in a.data:
        k, sep, v = d.partition("=")
        if not sep:
            raise ValueError(f"--data {d!r}: expected TASK=PATH")
        data[k] = v
    models = resolve_models(_split_list(a.model), get_preset(a.frontend) if a.frontend else None, a.device)
    o = RunOptions(tasks=tasks, data_root=a.data_root, data=data, protocols=protocols,
                   cache_dir=a.cache_dir or default_cache_dir(),
                   probe=ProbeConfig(max_epochs=a.max_epochs, patience=a.patience, seeds=tuple(range(a.seeds)), k=a.k),
                   finetune=FinetuneConfig(max_epochs=a.finetune_epochs, seeds=tuple(range(a.finetune_seeds)),
                                           max_steps=a.finetune_steps, device=a.device),
                   window_frames=a.window_frames, window_mode=a.window_mode, aggregate=a.aggregate, limit=a.limit,
                   batch_size=a.batch_size, workers=a.workers, progress=not a.no_progress)

    os.makedirs(a.out, exist_ok=True)
    results = evaluate(models, o, new_results(a.command),
                       on_task_done=lambda r: atomic_write_json(os.path.join(a.out, "results.json"), r))
    paths = write_reports(results, a.out, plots=not a.no_plots)
    with open(os.path.join(a.out, "results.md")) as f:
        print(f.read())
    print("wrote " + ", ".join(paths))
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from .report import csv_rows, load_results, markdown, merge, write_reports

    r = merge([(p, load_results(p)) for p in a.reports])
    if a.out:
        write_reports(r, a.out, title="Comparison: " + ", ".join(os.path.basename(os.path.normpath(p)) for p in a.reports))
    if a.format == "json":
        print(json.dumps(r, indent=1))
    elif a.format == "csv":
        import csv

        from .report import CSV_FIELDS
        w = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(csv_rows(r))
    else:
        print(markdown(r, "Comparison"))
    return 0


def cmd_tasks(a: argparse.Namespace) -> int:
    from .tasks import get_task, load_all

    if a.name:
        s = get_task(a.name)
        mod = sys.modules.get(s.__module__)
        print(f"{s.name}: {s.description}\nprotocol: {s.protocol}\nmetric: {s.metric}\ndomain: {s.domain}\n"
              f"layout: {s.layout}\nwindow: {s.window.slug()}\nreference: {s.reference}\n")
        if mod is not None and mod.__doc__:
            print(textwrap.dedent(mod.__doc__))
        return 0
    for name, s in load_all().items():
        print(f"{name:24s} {s.protocol:28s} {s.metric:9s} {s.domain:12s} {s.description}")
    return 0


@cli_main("python -m eval")
def main(argv: list[str] | None = None, prog: str = "python -m eval") -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    a = build_parser(prog).parse_args(argv)
    a.command = [*prog.split(), *(argv if argv is not None else sys.argv[1:])]  # recorded in results.json
    try:
        return {"run": cmd_run, "compare": cmd_compare, "tasks": cmd_tasks}[a.cmd](a)
    except (ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
