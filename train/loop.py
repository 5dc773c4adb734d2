"""The step-based Accelerate training loop (one process to many GPU nodes).

Data: ``pipeline.build_loader`` in training mode gives each rank an endless, resampled stream.
The stream is re-seeded with the current step at every checkpoint boundary (``save_every``), in
uninterrupted and resumed runs alike, so ``--resume`` continues with exactly the batches an
uninterrupted run would have seen, while no run replays an earlier segment's sequence.

Batch size: ``--batch-size`` is the global batch of one optimiser step; each process gets
``batch_size / (world_size * grad_accum)`` examples per micro-step.  Batch-coupled losses gather
across ranks (``models.distributed.gather_with_grad``) so they see the global batch, and BatchNorm
layers become SyncBatchNorm under DDP.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import os
import sys
import time
from typing import Any, Callable

import torch

from shards.atomic import atomic_write_bytes

from .budget import TimeBudget
from .checkpoint import latest_checkpoint, save_checkpoint
from .config import TrainConfig
from .export import load_weights, save_encoder
from .optim import build_optimizer, build_scheduler, replan_scheduler

log = logging.getLogger("melstream.train")

ProbeFn = Callable[[torch.nn.Module, dict], dict]


class NonFiniteLoss(RuntimeError):
    pass


DEFAULT_STEPS = 100_000
_KEEP_ALIVE: list[dict[str, Any]] = []  # distributed runs: see the end of train()


def resolve_steps(steps: int | None, hp: Any, steps_per_epoch: float | None) -> int:
    """``--steps`` if given, else the paper's length: ``total_steps``, else ``epochs`` over the shards'
    clips (one epoch = every clip once, as the papers count them), else :data:`DEFAULT_STEPS`."""
    if steps is not None:
        return int(steps)
    if getattr(hp, "total_steps", None):
        return int(hp.total_steps)
    if getattr(hp, "epochs", None) and steps_per_epoch:
        return max(int(math.ceil(hp.epochs * steps_per_epoch)), 1)
    log.warning("no --steps and no paper training length for this method: %d steps", DEFAULT_STEPS)
    return DEFAULT_STEPS


def shutdown_distributed(timeout_s: float = 60.0) -> bool:
    """A last barrier with a time limit; True when every rank reached it.

    The process group is deliberately not destroyed: ``destroy_process_group`` can block after all
    work is done (pytorch#75097; here a gloo rank blocked in it, holding the GIL, once its peer had
    exited), and the process is about to end anyway -- ``train/pretrain.py`` leaves with
    ``os._exit`` once the outputs are flushed, so the launcher never waits on a finished rank.
    """
    import threading

    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return True

    def teardown() -> None:
        try:
            dist.barrier()
        except Exception as e:  # a peer already gone: nothing left to wait for
            log.warning("final barrier: %s", str(e).splitlines()[0][:200])

    t = threading.Thread(target=teardown, name="melstream-pg-teardown", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        log.warning("final barrier not reached by every rank in %.0f s; all outputs are written, exiting anyway",
                    timeout_s)
        return False
    return True


def _encoder_setup(cfg: TrainConfig, obj_cls: Any, data_n_mels: int) -> tuple[str, dict[str, Any]]:
    from models import ENCODERS

    default_name, default_kwargs = obj_cls.default_encoder
    name = cfg.encoder or default_name
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose from {sorted(ENCODERS)}")
    kwargs = dict(default_kwargs) if name == default_name else {}
    kwargs.update(cfg.encoder_kwargs)
    builder = ENCODERS[name]
    accepts_n_mels = "n_mels" in inspect.signature(builder).parameters if callable(builder) else False
    if "n_mels" in default_kwargs and "n_mels" not in cfg.encoder_kwargs and name == default_name \
            and int(default_kwargs["n_mels"]) != data_n_mels:
        raise ValueError(f"method {cfg.method} expects {default_kwargs['n_mels']}-mel input for {name} (its paper's frontend) "
                         f"but the shards have {data_n_mels}: build shards with the matching preset "
                         f"(e.g. make shards PRESET=hares) or pass --encoder-arg n_mels={data_n_mels}")
    if "n_mels" in kwargs and int(kwargs["n_mels"]) != data_n_mels:
        raise ValueError(f"encoder {name} is set to n_mels={kwargs['n_mels']} but the shards have {data_n_mels} mel bins "
                         f"(rebuild the shards with the matching --preset or drop the n_mels override)")
    if accepts_n_mels:
        kwargs.setdefault("n_mels", data_n_mels)
    return name, kwargs


def _input_norm(sampler: str, info: Any, hp: Any) -> dict[str, Any] | None:
    if getattr(hp, "standardize", False):
        return {"type": "per_example"}
    if sampler.split("+")[0] == "views":
        return {"mean": float(info.mean), "std": float(info.std)}
    return None


def _sampler_kwargs(cfg: TrainConfig, sampler: str, hp: Any) -> dict[str, Any]:
    from pipeline import SAMPLERS

    kw: dict[str, Any] = {}
    first = sampler.split("+")[0]
    params = inspect.signature(SAMPLERS[first]).parameters if first in SAMPLERS else {}
    if "n_frames" in params and getattr(hp, "n_frames", None):
        kw["n_frames"] = int(hp.n_frames)
    kw.update(cfg.sampler_kwargs)
    return kw


def _truncate_metrics(path: str, step: int) -> None:
    if not os.path.exists(path):
        return
    keep = []
    with open(path) as f:
        for line in f:
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                break
    atomic_write_bytes(path, "".join(keep).encode())


def _manifest_hashes(dirs: list[str]) -> dict[str, str]:
    import hashlib

    out = {}
    for d in dirs:
        p = os.path.join(d, "manifest.json")
        if os.path.exists(p):
            out[d] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def param_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter (name, bytes): equal iff the ranks' weights agree bit for bit.

    Buffers are left out: with CPU ranks BatchNorm running statistics are per rank (DDP re-broadcasts
    rank 0's at the next forward)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(module.named_parameters()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _write_summary(acc: Any, cfg: TrainConfig, model: torch.nn.Module, step: int, losses: list[float],
                   keys: list[str], extra: dict[str, Any] | None = None) -> None:
    """``run_summary.json``: final step/loss, world size, per-rank parameter fingerprints and clips read."""
    from accelerate.utils import gather_object

    fps = gather_object([param_fingerprint(model)])
    read = gather_object([[str(k) for k in keys[:256]]])
    steps = gather_object([int(step)])
    if acc.is_main_process:
        from shards.atomic import atomic_write_json

        atomic_write_json(os.path.join(cfg.out, "run_summary.json"), {
            "step": step, "world_size": acc.num_processes, "final_loss": losses[-1] if losses else None,
            "param_fingerprints": fps, "ranks_in_sync": len(set(fps)) == 1, "first_clips_read_per_rank": read, "step_per_rank": steps,
            **(extra or {})})


def train(cfg: TrainConfig, probe: ProbeFn | None = None) -> dict[str, Any]:
    """Run (or resume) one training job; returns a summary with the final step and losses."""
    import yaml
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from models import build_encoder
    from models.objectives import build_objective, get_objective_class
    from pipeline import build_loader, read_manifests

    budget = TimeBudget(cfg.max_minutes, cfg.budget_plan_steps)  # the clock starts here (train/budget.py)
    obj_cls = get_objective_class(cfg.method)
    base_hp = obj_cls.default_hparams(cfg.hparams.get("preset")).to_dict()
    hp = obj_cls.HParams(**{k: v for k, v in {**base_hp, **cfg.hparams}.items() if k in base_hp})
    unknown_hp = set(cfg.hparams) - set(hp.to_dict()) - {"num_classes", "decoder", "preset"}
    if unknown_hp:
        raise ValueError(f"unknown hyperparameters for {cfg.method}: {sorted(unknown_hp)}")
    global_batch = int(cfg.batch_size or hp.batch_size)
    if cfg.grad_accum > 1 and getattr(obj_cls, "batch_coupled", False):
        raise ValueError(f"--grad-accum {cfg.grad_accum}: the {cfg.method} loss couples the examples of a batch (in-batch "
                         f"negatives / cross-correlation), so accumulation would shrink the batch it sees to "
                         f"{global_batch // cfg.grad_accum}; use more processes or a smaller --batch-size instead")
    trackers = []
    if cfg.tracker in ("auto", "tensorboard"):
        try:
            import tensorboard  # noqa: F401
            trackers = ["tensorboard"]
        except ImportError:
            if cfg.tracker == "tensorboard":
                raise ValueError("--tracker tensorboard: install tensorboard (pip install 'melstream[tb]')") from None
    from datetime import timedelta

    from accelerate.utils import InitProcessGroupKwargs

    # Each train() call configures Accelerate afresh (several runs in one process: tests, notebooks,
    # sweeps); the process group itself (PartialState) is kept.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    # step_scheduler_with_optimizer=False: our schedules count optimiser steps of the global batch;
    # Accelerate would otherwise advance them num_processes times per step under DDP.
    acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                      step_scheduler_with_optimizer=False,
                      log_with=trackers or None, project_dir=cfg.out,
                      kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=cfg.init_timeout_s))])
    world = acc.num_processes
    if global_batch % (world * cfg.grad_accum):
        raise ValueError(f"--batch-size {global_batch} is not divisible by world_size x grad_accum = {world * cfg.grad_accum}")
    local_batch = global_batch // (world * cfg.grad_accum)
    sampler = cfg.sampler or obj_cls.sampler
    facts = read_manifests(cfg.shards)
    enc_name, enc_kwargs = _encoder_setup(cfg, obj_cls, int(facts.n_mels))
    set_seed(cfg.seed)
    encoder = build_encoder(enc_name, **enc_kwargs)
    if cfg.init:
        load_weights(encoder, cfg.init, what="--init")
    extra: dict[str, Any] = {}
    if cfg.method == "supervised":
        if not facts.vocabulary:
            raise ValueError("method supervised needs labelled shards (the manifest has no label vocabulary)")
        extra["num_classes"] = len(facts.vocabulary)
    objective = build_objective(cfg.method, encoder, **{**cfg.hparams, **extra})
    if world > 1 and acc.device.type == "cuda":  # torch's SyncBatchNorm runs on CUDA only; CPU ranks keep local BN
        objective = torch.nn.SyncBatchNorm.convert_sync_batchnorm(objective)
    optimizer = build_optimizer(objective.param_groups(global_batch), hp)
    steps_per_epoch = facts.num_clips / global_batch if facts.num_clips else None
    cfg = dataclasses.replace(cfg, steps=budget.resolve_steps(cfg.steps, resolve_steps(cfg.steps, hp, steps_per_epoch),
                                                              cfg.out, cfg.resume, hp.schedule))
    scheduler = build_scheduler(optimizer, hp, cfg.steps, steps_per_epoch)
    objective, optimizer, scheduler = acc.prepare(objective, optimizer, scheduler)
    unwrapped = acc.unwrap_model(objective)

    os.makedirs(cfg.out, exist_ok=True)
    metrics_path = os.path.join(cfg.out, "metrics.jsonl")
    step = 0
    if cfg.resume:
        found = latest_checkpoint(cfg.out)
        if found is None:
            acc.print(f"--resume: no checkpoint in {cfg.out}; starting from step 0")
        else:
            step, path = found
            try:
                acc.load_state(path)
            except (KeyError, ValueError, RuntimeError) as e:
                raise ValueError(f"--resume: checkpoint {path} does not fit this configuration (changed method, "
                                 f"encoder, heads or optimiser?): {str(e).splitlines()[0][:200]}") from None
            acc.print(f"resumed from {path} (step {step})")
            if acc.is_main_process:
                _truncate_metrics(metrics_path, step)
    elif acc.is_main_process and os.path.exists(metrics_path):
        os.unlink(metrics_path)

    resolved = {**cfg.to_dict(), "encoder": enc_name, "encoder_kwargs": enc_kwargs, "sampler": sampler,
                "hparams": hp.to_dict(), "global_batch": global_batch, "local_batch": local_batch,
                "world_size": world, "frontend": facts.frontend, "manifest_sha256": _manifest_hashes(cfg.shards),
                "command": sys.argv}
    if acc.is_main_process:
        atomic_write_bytes(os.path.join(cfg.out, "config.yaml"), yaml.safe_dump(resolved, sort_keys=False).encode())
        if trackers:
            acc.init_trackers("melstream", config={k: v for k, v in resolved.items() if isinstance(v, (int, float, str, bool))})
    skw = _sampler_kwargs(cfg, sampler, hp)
    norm = _input_norm(sampler, facts, hp)  # refined from the loader's own account below

    def export(at: int) -> None:
        if acc.is_main_process:
            save_encoder(cfg.out, unwrapped.encoder, enc_name, enc_kwargs, facts.frontend, cfg.method, at, norm)

    bar = None
    if acc.is_main_process and (sys.stderr.isatty() or os.environ.get("MELSTREAM_PROGRESS") == "1"):
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=step, desc=f"{cfg.method}/{enc_name}", unit="step")
    losses: list[float] = []
    keys_read: list[str] = []
    t_last, n_last = time.perf_counter(), 0
    objective.train()
    while step < cfg.steps:
        seg_end = min((step // cfg.save_every + 1) * cfg.save_every, cfg.steps)
        loader, info = build_loader(cfg.shards, sampler, local_batch, mode="train", seed=cfg.seed,
                                    rank=acc.process_index, world_size=world, num_workers=cfg.num_workers,
                                    resume_step=step, sampler_kwargs=skw, shuffle_buffer=cfg.shuffle_buffer,
                                    expect_n_mels=int(enc_kwargs.get("n_mels", facts.n_mels)), return_keys=True)
        it = iter(loader)
        while step < seg_end:
            for _ in range(cfg.grad_accum):
                raw = next(it)
                keys = raw.pop("__key__", [])
                if len(keys_read) < 4096:
                    keys_read.extend(keys)
                batch = {k: (v.to(acc.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in raw.items()}
                if info.device_transform is not None:
                    batch = info.device_transform.to(acc.device)(batch)
                with acc.accumulate(objective):
                    out = objective(batch)
                    loss = out["loss"]
                    bad = torch.tensor(0.0 if torch.isfinite(loss.detach()).all() else 1.0, device=acc.device)
                    if world > 1:
                        bad = acc.reduce(bad, "sum")
                    if bad.item() > 0:
                        raise NonFiniteLoss(f"non-finite loss ({loss.item()}) at step {step + 1}; stopping. The last good "
                                            f"checkpoint in {cfg.out}/checkpoints is intact (resume with --resume "
                                            f"after lowering the learning rate or enabling --clip-grad)")
                    acc.backward(loss)
                    if cfg.clip_grad and acc.sync_gradients:
                        acc.clip_grad_norm_(objective.parameters(), cfg.clip_grad)
                    optimizer.step()
                    scheduler.step() if acc.sync_gradients else None
                    optimizer.zero_grad(set_to_none=True)
            unwrapped.after_step()
            step += 1
            n_last += global_batch
            stop, replanned = budget.after_step(step, acc)
            if replanned:
                cfg = dataclasses.replace(cfg, steps=replanned)
                seg_end = min((step // cfg.save_every + 1) * cfg.save_every, cfg.steps)  # shorter or longer
                replan_scheduler(scheduler, hp, cfg.steps, steps_per_epoch)
                if acc.is_main_process:
                    budget.save_plan(cfg.out, step)
            lval = float(acc.reduce(loss.detach().float(), "mean").item()) if world > 1 else float(loss.item())
            losses.append(lval)
            if bar is not None:
                bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps or stop:
                dt = time.perf_counter() - t_last
                rec = {"step": step, "loss": lval, "lr": float(scheduler.get_last_lr()[0]),
                       "examples_per_s": n_last / max(dt, 1e-9), "world_size": world,
                       "corrupt_skipped": int(getattr(info, "skipped", 0) or 0)}
                rec.update({k: float(v) for k, v in out.items() if k != "loss" and torch.is_tensor(v) and v.numel() == 1})
                t_last, n_last = time.perf_counter(), 0
                if probe is not None and cfg.probe_every and step % cfg.probe_every == 0 and acc.is_main_process:
                    rec.update(probe(unwrapped.encoder, {"input_norm": norm, "frontend": facts.frontend}))
                    objective.train()
                if acc.is_main_process:
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    if trackers:
                        acc.log({k: v for k, v in rec.items() if k != "step"}, step=step)
                    if bar is not None:
                        bar.set_postfix(loss=f"{lval:.4f}", lr=f"{rec['lr']:.2e}", ex_s=f"{rec['examples_per_s']:.0f}")
            if stop:
                break
        if step % cfg.save_every == 0 or step >= cfg.steps or budget.stopped_by:
            save_checkpoint(acc, cfg.out, step, cfg.keep_last)
            export(step)
        del it, loader
        if budget.stopped_by:
            break
    if bar is not None:
        bar.close()
    stopped = budget.summary(step, cfg.steps)
    _write_summary(acc, cfg, unwrapped, step, losses, keys_read, stopped)
    acc.wait_for_everyone()
    acc.end_training()
    clean = shutdown_distributed()
    if world > 1:
        # Keep every object of this run alive: returning would run their destructors (DDP's reducer,
        # the gloo/NCCL group, Accelerate's state), and one of them blocked for good, holding the GIL,
        # once the peer rank had exited (caught with MELSTREAM_HANG_DUMP_S in CI-like runs).  A
        # distributed run ends with os._exit right after this (train/pretrain.py).
        _KEEP_ALIVE.append(dict(locals()))
    if not all(math.isfinite(v) for v in losses):
        raise NonFiniteLoss("non-finite loss logged")
    return {"step": step, "losses": losses, "stopped_by": stopped["stopped_by"], "world_size": world, "out": cfg.out, "clean_shutdown": clean,
            "is_main_process": acc.is_main_process}
