#!/usr/bin/env python
"""`make gpu-check`: one command that proves the CUDA paths and measures them (issue 13).

On a CUDA machine (``--device auto``, the default) it builds small demo shards, then runs these
sections (``bench/gpu_sections.py``), in this order, each wrapped so that one failure is recorded
(with its error line) and the rest still run, under an overall time limit (400 s, plus a watchdog):

1. ``frontend``: log-mel on the device vs on CPU for the same audio, every preset (max abs diff).
2. ``methods_bf16``: every registered method x its default encoder (from the objectives registry),
   20 steps in bf16 through ``train.loop.train``: finite losses, loss moving, weights moved.
3. ``fp32_vs_cpu``: 2 methods in fp32 (TF32 off) on the device vs ``train/pretrain.py`` on CPU from
   the same seed: first-step loss within ``TOL['fp32_first_loss_rel']``.
4. ``eval``: ``python -m eval run --device cuda`` vs ``--device cpu`` on one demo task: embeddings to
   1e-3 (relative), identical probe scores.  5. ``hear``: the HEAR API on the device vs on CPU.
6. ``throughput``: (method, encoder, batch) configs in bf16, real pipeline at 2/4/8 workers vs the
   same batch held on the device (model-only ceiling), peak device memory; configs whose method or
   encoder is not registered are skipped with that reason.
7. ``ddp``: ``accelerate launch --multi_gpu --num_processes 2`` for byol_a (>= 2 GPUs, else skipped).

Writes ``bench/results/gpu.json`` (atomically, after every section) and a one-screen summary.
Without CUDA it says so in one line and exits 0.  ``--device cpu`` runs the same code on a tiny
config (``tests/test_gpu_check.py``), so the script cannot rot between GPU lendings.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import logging
import os
import platform
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

from _common import ROOT
from gpu_sections import SECTION_FNS, SECTIONS, TOL, first_line

SCHEMA = 1
WATCHDOG_GRACE_S = 45.0  # past the time limit, a hung run is recorded and ended (full: 400 + 45 s + start-up < 8 min)


@dataclass
class Profile:
    """Sizes of one run: ``full`` on a GPU (under 8 minutes), ``tiny`` for the CPU form in ``make test``."""

    name: str
    clips: tuple[int, int, int]      # demo pretrain / train / test clips
    seconds: float                   # demo clip length
    steps: int                       # bf16 steps per method
    batch: int                       # bf16 / fp32 batch per method
    workers: int                     # trainer DataLoader workers
    fp32_steps: int
    thr_workers: tuple[int, ...]
    thr_batch: int | None            # None: each config's own batch
    thr_warmup: int
    thr_steps: int
    eval_seeds: int
    eval_epochs: int
    eval_limit: int | None
    hear_sounds: int
    hear_seconds: float
    time_limit_s: float
    budgets: dict[str, float] = field(default_factory=dict)


# Section budgets (seconds) of the full profile; the sections run in SECTIONS order (the correctness
# checks first, then the measurements), and each also stops at the overall limit.
FULL = Profile("full", (320, 96, 48), 10.0, 20, 64, 2, 3, (2, 4, 8), None, 5, 20, 3, 100, None, 4, 4.0, 400.0,
               {"frontend": 15, "methods_bf16": 140, "fp32_vs_cpu": 50, "eval": 60, "hear": 15, "throughput": 95,
                "ddp": 90})
TINY = Profile("tiny", (24, 24, 12), 4.0, 3, 2, 1, 2, (1,), 2, 1, 2, 1, 5, 6, 2, 1.0, 240.0,
               {s: 120.0 for s in SECTIONS})


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def machine(device: str) -> dict[str, Any]:
    import torch

    m: dict[str, Any] = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
                         "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                         "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        import accelerate
        m["accelerate"] = accelerate.__version__
    except ImportError:
        m["accelerate"] = None
    if device == "cuda":
        n = torch.cuda.device_count()
        m["gpu_count"] = n
        m["gpus"] = []
        for i in range(n):
            p = torch.cuda.get_device_properties(i)
            m["gpus"].append({"name": p.name, "memory_gib": round(p.total_memory / 2 ** 30, 1),
                              "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count})
        m["gpu_name"] = m["gpus"][0]["name"] if n else None
        m["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
        m["tf32_default"] = {"cudnn": bool(torch.backends.cudnn.allow_tf32),
                             "matmul": bool(torch.backends.cuda.matmul.allow_tf32)}
    else:
        m["gpu_count"] = 0
    return m


# --------------------------------------------------------------------------------------------- context
class Check:
    """State of one run: profile, device, work dir, results (written atomically after each section)."""

    def __init__(self, a: argparse.Namespace, profile: Profile, device: str):
        self.a, self.p, self.device = a, profile, device
        self.work = os.path.abspath(a.work)
        self.out = os.path.abspath(a.out)
        self.t0 = time.monotonic()
        self.limit = float(a.time_limit or profile.time_limit_s)
        self.section_t0 = self.t0
        self.section_budget = self.limit
        self._shards: dict[str, str] = {}
        self.run_dirs: dict[str, str] = {}
        self.selected: list[str] | None = [m for m in a.methods.split(",") if m] if a.methods else None
        self.lock = threading.Lock()
        self.results: dict[str, Any] = {
            "schema": SCHEMA, "started": now(), "device": device, "profile": asdict(profile), "time_limit_s": self.limit,
            "command": ["bench/gpu_check.py", *a.argv], "machine": {}, "tolerances": TOL, "sections": {}}
        try:
            self.results["machine"] = machine(device)
        except Exception as e:  # noqa: BLE001 -- a driver query failing is a finding, not a reason to stop
            import torch

            self.results["machine"] = {"device": device, "torch": torch.__version__, "error": first_line(e)}

    # time guard -------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        """Seconds left, overall and within the current section's budget (the smaller)."""
        overall = self.limit - self.elapsed()
        section = self.section_budget - (time.monotonic() - self.section_t0)
        return min(overall, section)

    def out_of_time(self, need: float = 0.0) -> str | None:
        left = self.left()
        if left < need:
            return f"time limit: {max(left, 0):.0f} s left of this section's budget / the {self.limit:.0f} s limit"
        return None

    # results ----------------------------------------------------------------------------------
    def write(self) -> None:
        from shards.atomic import atomic_write_json

        with self.lock:
            self.results["elapsed_s"] = round(self.elapsed(), 1)
            os.makedirs(os.path.dirname(self.out), exist_ok=True)
            atomic_write_json(self.out, self.results)

    def is_selected(self, method: str) -> bool:
        return self.selected is None or method in self.selected

    # data -------------------------------------------------------------------------------------
    def shards(self, preset: str) -> str:
        """Demo shards for ``preset`` (built once per run with the demo ingest): the dataset root."""
        if preset in self._shards:
            return self._shards[preset]
        root = os.path.join(self.work, "data", preset)
        if not os.path.isfile(os.path.join(root, "test", "manifest.json")):
            from ingest.__main__ import main as ingest_main

            n_pre, n_train, n_test = self.p.clips
            os.makedirs(root, exist_ok=True)
            with open(os.path.join(self.work, "data", f"ingest_{preset}.log"), "w") as logf, \
                    contextlib.redirect_stdout(logf):  # the ingest's JSON report, kept out of the summary
                rc = ingest_main(["demo", "--out", root, "--audio-dir", os.path.join(self.work, "data", "audio"),
                                  "--preset", preset, "--workers", str(self.a.ingest_workers), "--shard-size", "64",
                                  "--pretrain-clips", str(n_pre), "--train-clips", str(n_train),
                                  "--test-clips", str(n_test), "--seconds", str(self.p.seconds), "--no-progress"])
            if rc:
                raise RuntimeError(f"demo ingest (preset {preset}) exited with status {rc}")
        self._shards[preset] = root
        return root


def run_section(c: Check, name: str) -> None:
    # a longer --time-limit than the profile's stretches every section's budget in proportion
    budget = c.p.budgets.get(name, c.limit) * max(1.0, c.limit / c.p.time_limit_s)
    c.section_t0, c.section_budget = time.monotonic(), float(budget)
    late = c.out_of_time(5)
    t0 = time.monotonic()
    print(f"[gpu-check] {name} ...", flush=True)
    if late:
        res = {"status": "skipped", "reason": late}
    else:
        try:
            res = SECTION_FNS[name](c)
        except Exception as e:  # noqa: BLE001 -- record and go on with the next section
            res = {"status": "error", "error": first_line(e),
                   "traceback": traceback.format_exc(limit=-4).splitlines()[-8:]}
    res["seconds"] = round(time.monotonic() - t0, 1)
    if res.get("reason") is None:
        res.pop("reason", None)
    c.results["sections"][name] = res
    print(f"[gpu-check] {name}: {res['status']} ({res['seconds']} s)"
          + (f" -- {res.get('error') or res.get('reason')}" if res["status"] in ("error", "skipped") else ""), flush=True)
    c.write()


# --------------------------------------------------------------------------------------------- summary
def table(rows: list[list], header: list[str]) -> str:
    """Numbers right-aligned, text left-aligned."""
    cols = [header] + [[str(v) for v in r] for r in rows]
    w = [max(len(r[i]) for r in cols) for i in range(len(header))]
    num = [all(_numeric(r[i]) for r in cols[1:]) for i in range(len(header))]
    out = ["  ".join(c.rjust(w[i]) if num[i] else c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in cols]
    out.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(out)


def _numeric(s: str) -> bool:
    return s.replace(",", "").replace(".", "").replace("-", "").replace("/", "").isdigit() or s == "-"


def _f(v: Any, fmt: str = ".3g") -> str:
    return "-" if v is None else (format(v, fmt) if isinstance(v, (int, float)) else str(v))


def summary(results: dict) -> str:
    m, S = results["machine"], results["sections"]
    gpu = f"{m.get('gpu_count', 0)} x {m.get('gpu_name')}" if m.get("gpu_count") else "no GPU"
    lines = [(f"gpu-check on {results['device']} ({gpu}; torch {m['torch']}, CUDA {m.get('cuda')}), profile "
              f"{results['profile']['name']}, {results.get('elapsed_s', 0):.0f} s")]
    rows = []
    for name in SECTIONS:
        s = S.get(name)
        if s is None:
            continue
        fig = ""
        if name == "frontend" and "rows" in s:
            fig = "max |diff| " + ", ".join(f"{r['preset']} {r['max_abs_diff']:.1e}" for r in s["rows"])
        elif name == "methods_bf16" and "rows" in s:
            st = [r["status"] for r in s["rows"]]
            bad = [r["method"] for r in s["rows"] if r["status"] in ("fail", "error")]
            fig = f"{st.count('ok')} ok, {st.count('skipped')} skipped" + (f", failed: {','.join(bad)}" if bad else "")
        elif name == "fp32_vs_cpu" and "rows" in s:
            fig = ", ".join(f"{r['method']} rel {r['first_loss_rel_diff']:.1e}" for r in s["rows"]
                            if "first_loss_rel_diff" in r)
        elif name == "ddp":
            fig = (f"world {s.get('world_size')}, in sync {s.get('ranks_in_sync')}, SyncBN {s.get('sync_batchnorm_layers')}"
                   if "world_size" in s else "")
        elif name == "eval" and "embedding_max_rel_diff" in s:
            fig = f"emb rel {s['embedding_max_rel_diff']:.1e}, scores identical {s['scores_identical']}"
        elif name == "hear" and "scene_rel_diff" in s:
            fig = f"scene rel {s['scene_rel_diff']:.1e}, timestamp rel {s['timestamp_rel_diff']:.1e}"
        elif name == "throughput" and "rows" in s:
            fig = "see below"
        if s["status"] in ("error", "skipped"):
            fig = (s.get("error") or s.get("reason") or "")[:90]
        rows.append([name, s["status"], f"{s.get('seconds', 0):.0f}", fig])
    lines.append(table(rows, ["section", "status", "s", "figures"]))
    thr = S.get("throughput", {}).get("rows", [])
    trows = []
    for r in thr:
        if r.get("status") not in ("ok", "fail"):
            continue
        ws = r.get("pipeline", {})
        cells = [_f(ws.get(str(w), {}).get("examples_per_s"), ",.0f") for w in S["throughput"]["workers"]]
        ratios = [_f(ws.get(str(w), {}).get("ratio_to_in_memory"), ".2f") for w in S["throughput"]["workers"]]
        trows.append([f"{r['method']}/{r['encoder']}", r["batch"], *cells, _f(r["in_memory"]["examples_per_s"], ",.0f"),
                      "/".join(ratios), _f(r["in_memory"].get("peak_mem_gib"), ".2f")])
    if trows:
        ws = S["throughput"]["workers"]
        prec = next((x["precision"] for x in thr if x.get("precision")), "bf16")
        lines += ["", f"throughput, {prec} examples/s (pipeline at N workers vs the batch held on the device):",
                  table(trows, ["method/encoder", "batch", *[f"{w} workers" for w in ws], "in-memory",
                                "pipeline/in-memory", "peak GiB"])]
    skipped = [f"{r['method']}/{r['encoder']}: {r['reason']}" for r in thr if r.get("status") == "skipped"]
    if skipped:
        lines.append("throughput skipped: " + "; ".join(skipped))
    lines.append(f"overall: {'PASS' if results.get('ok') else 'FAIL'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                    help="auto: cuda when available, else say so and exit 0; cpu: the tiny CPU form")
    ap.add_argument("--profile", choices=["full", "tiny"], default=None, help="default: full on cuda, tiny on cpu")
    ap.add_argument("--out", default=None, help="results JSON (default: bench/results/gpu.json on cuda, "
                    "WORK/gpu_cpu_form.json on cpu, so a CPU run never stands in for the GPU results)")
    ap.add_argument("--work", default=os.path.join(ROOT, "data", "gpu_check"), help="shards, runs, eval caches")
    ap.add_argument("--methods", default="", help="comma-separated subset of the methods (default: all registered)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--ingest-workers", type=int, default=min(8, max(1, (os.cpu_count() or 2) // 2)),
                    help="processes of the demo ingest (default: half the cores, at most 8)")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds (default: the profile's, 400 for full)")
    a = ap.parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch

    if a.device == "auto":
        if not torch.cuda.is_available():
            print(f"gpu-check: no CUDA device here (torch {torch.__version__}); nothing to check, skipping.")
            return 0
        a.device = "cuda"
    if a.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    if a.device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"  # the in-process trainer stays on CPU even beside a GPU
    if a.out is None:
        a.out = (os.path.join(ROOT, "bench", "results", "gpu.json") if a.device == "cuda"
                 else os.path.join(a.work, "gpu_cpu_form.json"))
    unknown = set(a.sections.split(",")) - set(SECTIONS)
    if unknown:
        print(f"error: unknown sections {sorted(unknown)}; choose from {list(SECTIONS)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    profile = {"full": FULL, "tiny": TINY}[a.profile or ("full" if a.device == "cuda" else "tiny")]
    c = Check(a, profile, a.device)
    c.write()

    def watchdog() -> None:  # a hang (NCCL, a stuck worker) must not outlive the lending: record and leave
        c.results["aborted"] = f"watchdog: still running {c.limit + WATCHDOG_GRACE_S:.0f} s after the start"
        c.results["ok"] = False
        c.write()
        print(f"[gpu-check] {c.results['aborted']}; partial results in {c.out}", flush=True)
        os._exit(3)

    dog = threading.Timer(c.limit + WATCHDOG_GRACE_S, watchdog)
    dog.daemon = True
    dog.start()
    try:
        chosen = a.sections.split(",")
        if set(chosen) - {"frontend", "ddp"}:  # ddp builds them itself, only when it can run
            try:
                c.shards("byol_a")  # built up front so the sections' times are their own
            except Exception as e:  # noqa: BLE001 -- the sections that need shards record their own error
                c.results["shards_error"] = first_line(e)
            c.results["shards_s"] = round(c.elapsed(), 1)
        for name in SECTIONS:
            if name in chosen:
                run_section(c, name)
            else:
                c.results["sections"][name] = {"status": "skipped", "reason": "not selected (--sections)",
                                               "seconds": 0.0}
    finally:
        dog.cancel()
    st = [s["status"] for s in c.results["sections"].values()]
    c.results["ok"] = not any(x in ("fail", "error") for x in st)
    c.results["finished"] = now()
    c.write()
    print()
    try:
        print(summary(c.results))
    except Exception as e:  # noqa: BLE001 -- the JSON is written; the table is a convenience
        print(f"(summary table failed: {first_line(e)}; see {c.out})")
    print(f"wrote {c.out}")
    return 0 if c.results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
