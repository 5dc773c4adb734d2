"""The sections of `make gpu-check` (``bench/gpu_check.py``): each takes the run's ``Check`` and
returns its JSON record with ``status`` ok | fail | error | skipped (skips carry a ``reason``).

Everything is looked up in the registries (objectives, encoders, frontend presets, samplers), so
methods and encoders added later are checked without edits here; the parity checks compare the device
against CPU with the stated tolerances :data:`TOL`.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from _common import ROOT

if TYPE_CHECKING:
    from gpu_check import Check

# Stated tolerances (issue 13).  Frontend: float32 STFT/mel on cuFFT vs pocketfft, in log units.
TOL = {"frontend_max_abs": 1e-3, "fp32_first_loss_rel": 1e-3, "eval_embedding_rel": 1e-3, "hear_embedding_rel": 1e-3}
# fp32 device-vs-CPU runs: methods whose batches are drawn on CPU workers and whose default encoder
# has no dropout, so both devices see the same batches and compute the same function.
FP32_METHODS = ("temporal_gap", "cola")
# (method, encoder, encoder kwargs, batch): issue 13 Sec. 3 and issue 16 (m2d / vit_base).
THROUGHPUT = [("byol_a", "audio_ntt", {"d": 2048}, 256), ("temporal_gap", "mobile", {}, 64),
              ("simclr", "slowfast_nfnet_f0", {}, 64), ("m2d", "vit_base", {}, 64)]
EVAL_TASK = "demo_family"
EVAL_RUN_PREFERENCE = ("temporal_gap", "byol_a")
SECTIONS = ("frontend", "methods_bf16", "fp32_vs_cpu", "eval", "hear", "throughput", "ddp")  # run order


# --------------------------------------------------------------------------------------------- helpers
def first_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:300] if msg else ''}"


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def rel_diff(a, b) -> float:
    """``||a - b|| / ||b||`` (Frobenius; 0 when both are 0)."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    nb = float(np.linalg.norm(b))
    d = float(np.linalg.norm(a - b))
    return d / nb if nb > 0 else (0.0 if d == 0 else math.inf)


def ieee_fp32():
    """Full float32 on CUDA (no TF32 in cuDNN convolutions or matmuls) for the parity checks."""
    from eval.embed import full_fp32

    return full_fp32()


def free_device_memory() -> None:
    """Return the cached blocks of a finished run, so the next one's peak memory is its own."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def synth_audio(n: int, seconds: float, sr: int = 16000, seed: int = 0):
    """Harmonic tones with amplitude modulation over a noise floor: ``float32 [n, samples]``."""
    import numpy as np
    import torch

    g = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    rows = []
    for _ in range(n):
        f0 = 110.0 * 2 ** g.uniform(0, 4)
        x = sum(0.5 / k * np.sin(2 * np.pi * f0 * k * t + g.uniform(0, 2 * np.pi)) for k in range(1, 7))
        x = x * 0.5 * (1 + np.sin(2 * np.pi * g.uniform(1, 4) * t)) + 0.05 * g.standard_normal(t.size)
        rows.append(0.3 * x)
    return torch.from_numpy(np.stack(rows).astype(np.float32))


def skipped(c: Any, r: dict, rows: list, why: str | None, need_s: float) -> bool:
    """Record row ``r`` as skipped (``why``, or no time left for ``need_s`` seconds) and say so."""
    why = why or c.out_of_time(need_s)
    if why:
        r.update(status="skipped", reason=why)
        rows.append(r)
    return bool(why)


def frontend_presets() -> dict:
    from shards.frontend import PRESETS

    return dict(PRESETS)


def log_mel_module(cfg):
    from shards.frontend import LogMel

    return LogMel(cfg)



def preset_for(method: str, encoder: str | None = None, enc_kwargs: dict | None = None) -> str:
    """The frontend preset whose mel bins the method's encoder expects (byol_a first for 64 mels)."""
    from models import ENCODERS
    from models.objectives import get_objective_class

    cls = get_objective_class(method)
    name, kw = cls.default_encoder
    kw = dict(kw) if (encoder is None or encoder == name) else {}
    kw.update(enc_kwargs or {})
    enc = encoder or name
    n_mels = kw.get("n_mels")
    if n_mels is None and enc in ENCODERS:
        p = inspect.signature(ENCODERS[enc]).parameters.get("n_mels")
        n_mels = p.default if p is not None and p.default is not inspect.Parameter.empty else 64
    presets = frontend_presets()
    for name in ("byol_a", *sorted(presets)):
        if name in presets and int(presets[name].n_mels) == int(n_mels or 64):
            return name
    raise ValueError(f"no frontend preset with {n_mels} mel bins for {method}/{enc}")


def method_table() -> list[tuple[str, str | None, str | None]]:
    """(method, default encoder, reason it cannot run) for every registered objective."""
    from models import ENCODERS
    from models.objectives import OBJECTIVES

    rows = []
    for m in sorted(OBJECTIVES):
        enc = OBJECTIVES[m].default_encoder[0]
        rows.append((m, enc, None if enc in ENCODERS else f"default encoder {enc!r} is not registered"))
    return rows


# --------------------------------------------------------------------------------------------- sections
def sec_frontend(c: Check) -> dict:
    import torch

    rows, ok = [], True
    audio = synth_audio(4, 2.0 if c.p.name == "tiny" else 10.0)
    for name, cfg in sorted(frontend_presets().items()):
        mod = log_mel_module(cfg).eval()
        with torch.inference_mode(), ieee_fp32():
            ref = mod(audio)
            dev = log_mel_module(cfg).to(c.device).eval()(audio.to(c.device)).cpu()
        d = (dev - ref).abs()
        r = {"preset": name, "shape": list(ref.shape), "max_abs_diff": float(d.max()),
             "p999_abs_diff": float(torch.quantile(d.flatten()[: 1 << 24].double(), 0.999)),
             "mean_abs_diff": float(d.mean())}
        r["ok"] = finite(r["max_abs_diff"]) and r["max_abs_diff"] <= TOL["frontend_max_abs"]
        ok &= r["ok"]
        rows.append(r)
    return {"status": "ok" if ok else "fail", "rows": rows}


def _train_cfg(c: Check, method: str, out: str, steps: int, precision: str, workers: int, log_every: int):
    from train.config import TrainConfig

    return TrainConfig(method=method, shards=[os.path.join(c.shards(preset_for(method)), "pretrain")], out=out,
                       steps=steps, batch_size=c.p.batch, mixed_precision=precision, num_workers=workers,
                       save_every=steps, log_every=log_every, keep_last=1, tracker="none", seed=0,
                       shuffle_buffer=256)


def _weights_moved(run_dir: str) -> float:
    """Largest |exported weight - initial weight| (the trainer seeds ``set_seed(seed)`` then builds)."""
    import torch
    from accelerate.utils import set_seed

    from models import build_encoder
    from train.export import load_encoder

    trained, meta = load_encoder(run_dir, device="cpu")
    set_seed(0)
    init = build_encoder(meta["encoder"], **meta["kwargs"])
    a, b = dict(trained.named_parameters()), dict(init.named_parameters())
    with torch.no_grad():
        return max((float((a[k].float() - b[k].float()).abs().max()) for k in a if k in b and a[k].numel()),
                   default=0.0)


def sec_methods_bf16(c: Check) -> dict:
    from train.loop import NonFiniteLoss, train

    rows, ok = [], True
    for method, enc, why in method_table():
        r: dict[str, Any] = {"method": method, "encoder": enc}
        if skipped(c, r, rows, why or (None if c.is_selected(method) else "not selected (--methods)"), 15):
            continue
        t0 = time.monotonic()
        out = os.path.join(c.work, "runs", "bf16", method)
        try:
            r["preset"] = preset_for(method)
            res = train(_train_cfg(c, method, out, c.p.steps, "bf16", c.p.workers, c.p.steps))
            losses = [float(v) for v in res["losses"]]
            k = max(1, min(5, len(losses) // 2))
            r.update(steps=res["step"], loss_first=losses[0], loss_last=losses[-1],
                     loss_first_k_mean=sum(losses[:k]) / k, loss_last_k_mean=sum(losses[-k:]) / k,
                     finite=all(map(math.isfinite, losses)), loss_range=max(losses) - min(losses),
                     weights_max_change=_weights_moved(out))
            r["moving"] = r["loss_range"] > 1e-6 * max(1.0, abs(r["loss_first"]))
            good = r["finite"] and r["moving"] and r["weights_max_change"] > 0 and res["step"] == c.p.steps
            r["status"] = "ok" if good else "fail"
            if good:
                c.run_dirs[method] = out
        except NonFiniteLoss as e:
            r.update(status="fail", finite=False, error=first_line(e))
        except Exception as e:  # noqa: BLE001 -- one method's failure must not stop the others
            r.update(status="error", error=first_line(e), traceback=traceback.format_exc(limit=-3).splitlines()[-6:])
        free_device_memory()
        r["seconds"] = round(time.monotonic() - t0, 1)
        ok &= r["status"] in ("ok", "skipped")
        print(f"[gpu-check]   bf16 {method}/{enc}: {r['status']} ({r['seconds']} s)"
              + (f" {r.get('error', '')}" if r["status"] == "error" else ""), flush=True)
        rows.append(r)
    return {"status": "ok" if ok else "fail", "steps": c.p.steps, "batch": c.p.batch, "rows": rows,
            "criteria": "finite losses, loss not constant, exported weights differ from the seeded init"}


def cpu_reference_cmd(method: str, shards: str, out: str, steps: int, batch: int) -> list[str]:
    """``train/pretrain.py`` on CPU (the same flags as the device run)."""
    return [sys.executable, os.path.join(ROOT, "train", "pretrain.py"), "--method", method, "--shards", shards,
            "--out", out, "--steps", str(steps), "--batch-size", str(batch), "--num-workers", "1",
            "--log-every", "1", "--save-every", str(steps), "--keep-last", "1", "--tracker", "none", "--seed", "0",
            "--shuffle-buffer", "256", "--mixed-precision", "no"]


def _save_log(path: str, p: subprocess.CompletedProcess) -> str:
    """A subprocess's stdout and stderr, kept beside its run dir for a look after the lending."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"$ {' '.join(map(str, p.args))}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}\n")
    return path


def _error_line(stderr: str) -> str:
    """The most telling line of a failed subprocess: the last ``...Error: ...`` / ``error: ...`` line."""
    lines = [x.strip() for x in (stderr or "").splitlines() if x.strip()]
    for x in reversed(lines):
        if ("Error" in x or x.startswith("error:")) and "CalledProcessError" not in x:
            return x[:300]
    return lines[-1][:300] if lines else "(no stderr)"


def _metrics_losses(run_dir: str) -> list[float]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [float(json.loads(x)["loss"]) for x in f if x.strip()]


def sec_fp32(c: Check) -> dict:
    from models.objectives import OBJECTIVES
    from train.loop import train

    rows, ok, ran = [], True, 0
    for method in FP32_METHODS:
        r: dict[str, Any] = {"method": method}
        why = "not registered" if method not in OBJECTIVES else None if c.is_selected(method) else "not selected (--methods)"
        if skipped(c, r, rows, why, 20):
            continue
        t0 = time.monotonic()
        try:
            dev_out = os.path.join(c.work, "runs", "fp32", f"{method}_{c.device}")
            cpu_out = os.path.join(c.work, "runs", "fp32", f"{method}_cpu_ref")
            cfg = _train_cfg(c, method, dev_out, c.p.fp32_steps, "no", 1, 1)
            with ieee_fp32():
                dev_losses = [float(v) for v in train(cfg)["losses"]]
            env = {**os.environ, "ACCELERATE_USE_CPU": "true", "CUDA_VISIBLE_DEVICES": "",
                   "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
            if c.device == "cpu":  # the CPU form: the reference sums in the same intra-op thread order
                import torch

                env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
            p = subprocess.run(cpu_reference_cmd(method, cfg.shards[0], cpu_out, c.p.fp32_steps, c.p.batch),
                               env=env, capture_output=True, text=True, timeout=max(30.0, c.left()), cwd=ROOT,
                               check=False)
            r["cpu_log"] = _save_log(cpu_out + ".log", p)
            if p.returncode:
                raise RuntimeError(f"CPU reference exited {p.returncode}: {_error_line(p.stderr)}")
            cpu_losses = _metrics_losses(cpu_out)
            rel = abs(dev_losses[0] - cpu_losses[0]) / max(abs(cpu_losses[0]), 1e-6)
            r.update(encoder=OBJECTIVES[method].default_encoder[0], losses_device=dev_losses, losses_cpu=cpu_losses,
                     first_loss_rel_diff=rel,
                     max_rel_diff_all_steps=max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(dev_losses, cpu_losses)),
                     tf32=False, status="ok" if rel <= TOL["fp32_first_loss_rel"] else "fail")
            ran += 1
        except Exception as e:  # noqa: BLE001
            r.update(status="error", error=first_line(e))
        r["seconds"] = round(time.monotonic() - t0, 1)
        ok &= r["status"] in ("ok", "skipped")
        print(f"[gpu-check]   fp32 {method}: {r['status']} rel {r.get('first_loss_rel_diff', float('nan')):.2e}"
              + (f" {r.get('error', '')}" if r["status"] == "error" else ""), flush=True)
        rows.append(r)
    status = ("ok" if ok else "fail") if ran or not ok else "skipped"
    out = {"status": status, "tolerance_rel": TOL["fp32_first_loss_rel"], "rows": rows}
    if status == "skipped":
        out["reason"] = "none of " + ", ".join(FP32_METHODS) + " could run"
    return out


def _sampler_kwargs(sampler: str, hp: Any, device_type: str) -> dict:
    """``n_frames`` from the hyperparameters, and ``augment_on`` settled for the device as the trainer does."""
    from pipeline import SAMPLERS
    from pipeline.samplers import resolve_augment_on

    first = sampler.split("+")[0]
    params = inspect.signature(SAMPLERS[first]).parameters if first in SAMPLERS else {}
    kw = {"n_frames": int(hp.n_frames)} if "n_frames" in params and getattr(hp, "n_frames", None) else {}
    return resolve_augment_on(sampler, kw, device_type)


def _throughput_one(c: Check, method: str, enc: str, kw: dict, batch: int) -> dict:
    import torch

    from models import ENCODERS, build_encoder
    from models.objectives import build_objective, get_objective_class
    from pipeline import build_loader, read_manifests
    from train.optim import build_optimizer

    dev = torch.device(c.device)
    cuda = dev.type == "cuda"
    shards = os.path.join(c.shards(preset_for(method, enc, kw)), "pretrain")
    facts = read_manifests([shards])
    cls = get_objective_class(method)
    hp = cls.default_hparams()
    kwargs = dict(kw)
    if "n_mels" in inspect.signature(ENCODERS[enc]).parameters:
        kwargs.setdefault("n_mels", int(facts.n_mels))
    torch.manual_seed(0)
    obj = build_objective(method, build_encoder(enc, **kwargs)).to(dev).train()
    opt = build_optimizer(obj.param_groups(batch), hp)
    skw = _sampler_kwargs(cls.sampler, hp, dev.type)

    def to_dev(raw: dict, info) -> dict:
        raw.pop("__key__", None)
        b = {k: (v.to(dev, non_blocking=True) if torch.is_tensor(v) else v) for k, v in raw.items()}
        return info.device_transform.to(dev)(b) if info.device_transform is not None else b

    def step(b: dict) -> float:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):  # CPU form: fp32 (bf16 there is emulated)
            out = obj(b)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        obj.after_step()
        return out["loss"].detach()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    def timed(next_batch: Callable[[], dict]) -> tuple[float, float | None, bool]:
        for _ in range(c.p.thr_warmup):
            step(next_batch())
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        losses = []
        t0 = time.perf_counter()
        for _ in range(c.p.thr_steps):
            losses.append(step(next_batch()))
        sync()
        dt = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated(dev) / 2 ** 30 if cuda else None
        fin = bool(torch.isfinite(torch.stack(losses).float()).all())
        return batch * c.p.thr_steps / dt, peak, fin

    r: dict[str, Any] = {"pipeline": {}}
    load = {"sampler_kwargs": skw, "shuffle_buffer": 256, "pin_memory": cuda, "expect_n_mels": int(facts.n_mels)}
    loader, info = build_loader([shards], cls.sampler, batch, mode="train", num_workers=0, **load)
    it = iter(loader)
    fixed = to_dev(next(it), info)
    del it, loader
    rate, peak, fin = timed(lambda: fixed)
    r["in_memory"] = {"examples_per_s": rate, "peak_mem_gib": peak, "finite": fin}
    for w in c.p.thr_workers:
        late = c.out_of_time(10)
        if late:
            r["pipeline"][str(w)] = {"skipped": late}
            continue
        loader, info = build_loader([shards], cls.sampler, batch, mode="train", num_workers=w, **load)
        it = iter(loader)
        rate, peak, fin = timed(lambda it=it, info=info: to_dev(next(it), info))
        del it, loader  # the workers stop here
        r["pipeline"][str(w)] = {"examples_per_s": rate, "peak_mem_gib": peak, "finite": fin,
                                 "ratio_to_in_memory": rate / r["in_memory"]["examples_per_s"]}
    enough = [int(w) for w, v in r["pipeline"].items() if v.get("ratio_to_in_memory", 0) >= 0.9]
    r["workers_to_reach_90pct"] = min(enough) if enough else None
    r["finite"] = r["in_memory"]["finite"] and all(v.get("finite", True) for v in r["pipeline"].values())
    return r


def sec_throughput(c: Check) -> dict:
    from models import ENCODERS
    from models.objectives import OBJECTIVES

    rows, ok, ran = [], True, 0
    for method, enc, kw, batch in THROUGHPUT:
        b = c.p.thr_batch or batch
        r: dict[str, Any] = {"method": method, "encoder": enc, "encoder_kwargs": kw, "batch": b,
                             "precision": "bf16" if c.device == "cuda" else "fp32"}
        why = (f"method {method!r} is not registered" if method not in OBJECTIVES else
               f"encoder {enc!r} is not registered" if enc not in ENCODERS else
               None if c.is_selected(method) else "not selected (--methods)")
        if skipped(c, r, rows, why, 20):
            continue
        t0 = time.monotonic()
        try:
            r.update(_throughput_one(c, method, enc, kw, b))
            r["status"] = "ok" if r["finite"] else "fail"
            ran += 1
        except Exception as e:  # noqa: BLE001
            r.update(status="error", error=first_line(e), traceback=traceback.format_exc(limit=-3).splitlines()[-6:])
        free_device_memory()
        r["seconds"] = round(time.monotonic() - t0, 1)
        ok &= r["status"] in ("ok", "skipped")
        print(f"[gpu-check]   throughput {method}/{enc} b{b}: {r['status']} ({r['seconds']} s)"
              + (f" {r.get('error', '')}" if r["status"] == "error" else ""), flush=True)
        rows.append(r)
    return {"status": ("ok" if ok else "fail") if ran or not ok else "skipped", "workers": list(c.p.thr_workers),
            "rows": rows, "reason": None if ran or not ok else "no configuration could run"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_command(shards: str, out: str, steps: int, batch: int, port: int, precision: str = "bf16") -> list[str]:
    """Two ranks of byol_a through ``accelerate launch --multi_gpu --num_processes 2`` (NCCL on GPUs)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", precision, "--dynamo_backend", "no",
            "--main_process_port", str(port), os.path.join(ROOT, "train", "pretrain.py"), "--method", "byol_a",
            "--shards", shards, "--out", out, "--steps", str(steps), "--batch-size", str(batch),
            "--num-workers", "2", "--log-every", "1", "--save-every", str(steps), "--tracker", "none",
            "--mixed-precision", precision]


def sec_ddp(c: Check) -> dict:
    import torch

    from models.objectives import OBJECTIVES

    n = torch.cuda.device_count() if c.device == "cuda" else 0
    cmd = ddp_command("SHARDS", "OUT", 10, 64, 0)
    base = {"command": " ".join(os.path.basename(x) if x == sys.executable else x for x in cmd), "gpus": n}
    if "byol_a" not in OBJECTIVES:
        return {**base, "status": "skipped", "reason": "method byol_a is not registered"}
    if c.device != "cuda":
        return {**base, "status": "skipped", "reason": "CPU form: NCCL needs 2 GPUs (2 CPU ranks over gloo are "
                                                     "covered by tests/test_train_ddp.py)"}
    if n < 2:
        return {**base, "status": "skipped", "reason": f"{n} GPU on this machine; DDP needs at least 2"}
    if not c.is_selected("byol_a"):
        return {**base, "status": "skipped", "reason": "not selected (--methods)"}
    out = os.path.join(c.work, "runs", "ddp_byol_a")
    shards = os.path.join(c.shards(preset_for("byol_a")), "pretrain")
    env = {**os.environ, "MELSTREAM_HANG_DUMP_S": str(int(max(60, c.left() - 10))),
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("ACCELERATE_USE_CPU", None)
    p = subprocess.run(ddp_command(shards, out, 10, 64, free_port()), env=env, capture_output=True, text=True,
                       timeout=max(60.0, c.left()), cwd=ROOT, check=False)
    r = {**base, "returncode": p.returncode, "log": _save_log(out + ".log", p)}
    if p.returncode:
        return {**r, "status": "error", "error": _error_line(p.stderr), "stderr_tail": p.stderr.splitlines()[-12:]}
    with open(os.path.join(out, "run_summary.json")) as f:
        s = json.load(f)
    losses = _metrics_losses(out)
    r.update(world_size=s.get("world_size"), ranks_in_sync=s.get("ranks_in_sync"),
             sync_batchnorm_layers=s.get("sync_batchnorm_layers"), steps=s.get("step"), losses=losses,
             finite=all(map(math.isfinite, losses)))
    good = r["world_size"] == 2 and r["ranks_in_sync"] is True and (r["sync_batchnorm_layers"] or 0) > 0 and r["finite"]
    return {**r, "status": "ok" if good else "fail"}


def _eval_run_dir(c: Check) -> str:
    for m in (*EVAL_RUN_PREFERENCE, *sorted(c.run_dirs)):
        d = c.run_dirs.get(m)
        if d and os.path.isfile(os.path.join(d, "encoder.json")):
            return d
    from models.objectives import OBJECTIVES
    from train.loop import train

    method = next(m for m in (*EVAL_RUN_PREFERENCE, *sorted(OBJECTIVES)) if m in OBJECTIVES and c.is_selected(m))
    out = os.path.join(c.work, "runs", "eval_model")
    train(_train_cfg(c, method, out, 2, "no", c.p.workers, 1))
    c.run_dirs.setdefault(method, out)
    return out


def _embeddings(cache: str) -> dict[str, dict]:
    from eval.cache import read_embeddings

    out = {}
    for dirpath, _dirs, files in os.walk(os.path.join(cache, "emb")):
        if "manifest.json" in files:
            out[os.path.relpath(dirpath, cache)] = read_embeddings(dirpath)
    return out


def _scores(results: dict, task: str) -> dict[str, Any]:
    out = {}
    for model, v in results["models"].items():
        for probe, res in v["results"].get(task, {}).items():
            if isinstance(res, dict) and "mean" in res:
                out[f"{model}/{probe}"] = {"mean": res["mean"], "per_seed": res.get("per_seed")}
    return out


def sec_eval(c: Check) -> dict:
    from eval.__main__ import main as eval_main

    run = _eval_run_dir(c)
    with open(os.path.join(run, "encoder.json")) as f:
        fe_name = json.load(f)["frontend"].get("name")
    data = c.shards(fe_name if fe_name in frontend_presets() else "byol_a")  # the demo task, through the run's frontend
    runs: dict[str, dict] = {}
    for tag, dev in (("device", c.device), ("cpu", "cpu")):
        out = os.path.join(c.work, "eval", tag)
        cache = os.path.join(c.work, "eval_cache", tag)
        argv = ["run", "--model", run, "--tasks", EVAL_TASK, "--data", f"{EVAL_TASK}={data}", "--out", out,
                "--cache-dir", cache, "--device", dev, "--seeds", str(c.p.eval_seeds),
                "--max-epochs", str(c.p.eval_epochs), "--protocols", "linear,knn", "--no-plots", "--no-progress"]
        if c.p.eval_limit:
            argv += ["--limit", str(c.p.eval_limit)]
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):  # eval prints its results.md
            rc = eval_main(argv)
        if rc:
            raise RuntimeError(f"eval run --device {dev} exited with status {rc}")
        with open(os.path.join(out, "results.json")) as f:
            runs[tag] = {"scores": _scores(json.load(f), EVAL_TASK), "emb": _embeddings(cache)}
    e_dev, e_cpu = runs["device"]["emb"], runs["cpu"]["emb"]
    if not e_cpu or set(e_dev) != set(e_cpu):
        raise RuntimeError(f"embedding caches differ in layout: {sorted(e_dev)} vs {sorted(e_cpu)}")
    worst, worst_abs, n = 0.0, 0.0, 0
    for kind, ref in e_cpu.items():
        got = e_dev[kind]
        if set(got) != set(ref):
            raise RuntimeError(f"{kind}: the two devices embedded different clips")
        for k, v in ref.items():
            worst = max(worst, rel_diff(got[k], v))
            worst_abs = max(worst_abs, float(abs(got[k] - v).max()) if v.size else 0.0)
            n += 1
    same_scores = runs["device"]["scores"] == runs["cpu"]["scores"]
    r = {"task": EVAL_TASK, "run": os.path.relpath(run, c.work), "clips_compared": n, "embedding_max_rel_diff": worst,
         "embedding_max_abs_diff": worst_abs, "scores_device": runs["device"]["scores"],
         "scores_cpu": runs["cpu"]["scores"], "scores_identical": same_scores,
         "tolerance_rel": TOL["eval_embedding_rel"]}
    r["status"] = "ok" if (n > 0 and worst <= TOL["eval_embedding_rel"] and same_scores and r["scores_cpu"]) else "fail"
    return r


def sec_hear(c: Check) -> dict:
    import torch

    from eval.hear import get_scene_embeddings, get_timestamp_embeddings, load_model

    run = _eval_run_dir(c)
    audio = synth_audio(c.p.hear_sounds, c.p.hear_seconds, seed=1)
    out: dict[str, Any] = {}
    for tag, dev in (("device", c.device), ("cpu", "cpu")):
        m = load_model(run, device=dev)
        scene = get_scene_embeddings(audio, m).cpu()
        ts_emb, ts = get_timestamp_embeddings(audio, m)
        out[tag] = (scene, ts_emb.cpu(), ts.cpu())
        del m
    (s_d, e_d, t_d), (s_c, e_c, t_c) = out["device"], out["cpu"]
    r = {"run": os.path.relpath(run, c.work), "sounds": list(audio.shape), "scene_shape": list(s_c.shape),
         "timestamp_shape": list(e_c.shape), "scene_rel_diff": rel_diff(s_d, s_c),
         "timestamp_rel_diff": rel_diff(e_d, e_c), "timestamps_equal": bool(torch.equal(t_d, t_c)),
         "finite": bool(torch.isfinite(s_d).all() and torch.isfinite(e_d).all()),
         "tolerance_rel": TOL["hear_embedding_rel"]}
    good = (r["finite"] and r["timestamps_equal"] and r["scene_rel_diff"] <= TOL["hear_embedding_rel"]
            and r["timestamp_rel_diff"] <= TOL["hear_embedding_rel"])
    return {**r, "status": "ok" if good else "fail"}


SECTION_FNS: dict[str, Callable[[Check], dict]] = {
    "frontend": sec_frontend, "methods_bf16": sec_methods_bf16, "fp32_vs_cpu": sec_fp32, "throughput": sec_throughput,
    "ddp": sec_ddp, "eval": sec_eval, "hear": sec_hear}
