"""The step-based Accelerate training loop (one process to many GPU nodes).

Data: ``pipeline.build_loader`` in training mode gives each rank an endless stream.  ``--data-order
resampled`` (default): shards drawn with replacement, re-seeded with the current step at every checkpoint
boundary (``save_every``), in uninterrupted and resumed runs alike, so ``--resume`` at the same world size
and workers continues with exactly the batches an uninterrupted run would have seen.  ``--data-order
epoch``: every clip once per epoch, the global batches a function of (seed, step, dataset), so a resume on
any world size or worker count continues exactly; the checkpoint's ``data_state.json`` is checked
(train/data_state.py, docs/training.md).

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

from models import ENCODERS, build_encoder, memory_format
from models.objectives import build_objective, get_objective_class
from pipeline import SAMPLERS, build_loader, build_sampler, read_manifests
from pipeline.samplers import resolve_augment_on
from shards import sha256_file
from shards.atomic import atomic_write_bytes, atomic_write_json
from shards.frontend import FrontendConfig
from shards.progress import progress_bar, progress_enabled
from shards.redact import redact_obj

from .budget import TimeBudget
from .checkpoint import latest_checkpoint, load_newest, save_checkpoint
from .config import TrainConfig
from .data_state import FILE as DATA_STATE
from .data_state import check_resume as check_data_resume
from .data_state import data_state, read_data_state
from .export import load_weights, save_encoder
from .nodes import check_launch, write_node_record
from .optim import build_optimizer, build_scheduler, replan_scheduler
from .outdir import check_resume, claim, main_decides
from .validate import build_checked, check_run

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
        preset = obj_cls.frontend_preset
        raise ValueError(f"method {cfg.method} expects {default_kwargs['n_mels']}-mel input for {name} (its paper's frontend) "
                         f"but the shards have {data_n_mels}: re-ingest with `python -m ingest folder SRC --out DIR "
                         f"--preset {preset}` (make shards PRESET={preset}) or pass --encoder-arg n_mels={data_n_mels}")
    if "n_mels" in kwargs and int(kwargs["n_mels"]) != data_n_mels:
        raise ValueError(f"encoder {name} is set to n_mels={kwargs['n_mels']} but the shards have {data_n_mels} mel bins "
                         f"(rebuild the shards with the matching --preset or drop the n_mels override)")
    if accepts_n_mels:
        kwargs.setdefault("n_mels", data_n_mels)
    return name, kwargs


def _sampler_kwargs(cfg: TrainConfig, sampler: str, obj_cls: Any, hp: Any, encoder: Any,
                    device_type: str = "cpu") -> dict[str, Any]:
    """The objective's options for its default sampler, ``n_frames`` from the hyperparameters, the
    objective's data-side options (``sampler_options``: e.g. a masking ratio and the encoder's patch grid),
    each only where a part of the sampler takes it, then ``--sampler-arg`` overrides; last,
    ``augment_on='auto'`` settled for the training device (``resolve_augment_on``: GPU -> ``device``)."""
    kw: dict[str, Any] = dict(obj_cls.sampler_kwargs) if sampler == obj_cls.sampler else {}
    params = inspect.signature(SAMPLERS.get(sampler.split("+")[0])).parameters
    if "n_frames" in params and getattr(hp, "n_frames", None):
        kw["n_frames"] = int(hp.n_frames)
    parts = [inspect.signature(SAMPLERS.get(p)).parameters for p in sampler.split("+")]
    for k, v in obj_cls.sampler_options(hp, encoder).items():
        if v is not None and any(k in ps for ps in parts):
            kw[k] = v
    kw.update(cfg.sampler_kwargs)
    return resolve_augment_on(sampler, kw, device_type)


def check_pairing(obj_cls: Any, sampler: Any, encoder: torch.nn.Module, n_frames: int | None) -> None:
    """Before step 1: the sampler provides every batch key the objective reads (``batch_keys``), and the
    encoder offers what the objective needs (``needs_frames`` / ``needs_blocks``, via ``check``).
    ``ValueError`` with a one-line reason otherwise."""
    missing = [k for k in obj_cls.batch_keys if k not in sampler.provides]
    if missing:
        raise ValueError(f"method {obj_cls.name} reads batch key(s) {missing} that sampler {sampler.name!r} does not "
                         f"provide (it gives {list(sampler.provides)}); drop --sampler or pick one that does")
    obj_cls.check(encoder, n_frames=n_frames)


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
    return {d: sha256_file(os.path.join(d, "manifest.json")) for d in dirs if os.path.exists(os.path.join(d, "manifest.json"))}


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

    from .nodes import node_info

    fps = gather_object([param_fingerprint(model)])
    where = gather_object([node_info(acc)])
    read = gather_object([[str(k) for k in keys[:256]]])
    steps = gather_object([int(step)])
    if acc.is_main_process:
        atomic_write_json(os.path.join(cfg.out, "run_summary.json"), redact_obj({
            "step": step, "world_size": acc.num_processes, "final_loss": losses[-1] if losses else None,
            "param_fingerprints": fps, "ranks_in_sync": len(set(fps)) == 1, "first_clips_read_per_rank": read,
            "step_per_rank": steps, "ranks": where, "sync_batchnorm_layers": sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules()),
            **(extra or {})}))


@dataclasses.dataclass
class Run:
    """What :func:`setup` prepares and the step / checkpoint / log pieces share."""

    cfg: TrainConfig
    acc: Any
    objective: torch.nn.Module  # prepared (DDP-wrapped under several processes)
    unwrapped: Any
    optimizer: Any
    scheduler: Any
    facts: Any
    sampler: str
    sampler_kwargs: dict[str, Any]
    input_norm: dict[str, Any] | None
    enc_name: str
    enc_kwargs: dict[str, Any]
    global_batch: int
    local_batch: int
    trackers: list[str]
    metrics_path: str
    budget: Any  # train.budget.TimeBudget: the wall-clock limit (--max-minutes) and length planning
    hp: Any
    steps_per_epoch: float | None
    step: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)
    keys_read: list[str] = dataclasses.field(default_factory=list)
    bar: Any = None
    lock: Any = None  # shards.lock.DirLock on cfg.out, held by the main process for the whole run

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @property
    def world(self) -> int:
        return int(self.acc.num_processes)


def _trackers(cfg: TrainConfig) -> list[str]:
    if cfg.tracker in ("auto", "tensorboard"):
        try:
            import tensorboard  # noqa: F401
            return ["tensorboard"]
        except ImportError:
            if cfg.tracker == "tensorboard":
                raise ValueError("--tracker tensorboard: install tensorboard (pip install 'melstream[tb]')") from None
    return []


def _accelerator(cfg: TrainConfig, trackers: list[str]) -> Any:
    from datetime import timedelta

    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import InitProcessGroupKwargs

    # Each train() call configures Accelerate afresh (several runs in one process: tests, notebooks,
    # sweeps); the process group itself (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    # step_scheduler_with_optimizer=False: our schedules count optimiser steps of the global batch;
    # Accelerate would otherwise advance them num_processes times per step under DDP.
    return Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                       step_scheduler_with_optimizer=False,
                       log_with=trackers or None, project_dir=cfg.out,
                       kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=cfg.init_timeout_s))])


def setup(cfg: TrainConfig) -> Run:
    """Everything before step 1: hyperparameters, Accelerate, data facts, encoder + objective (pairing
    checked), optimiser, schedule; then the run directory (lock, what is there: train/outdir.py),
    resume, ``config.yaml``.  Nothing is written before every check has passed."""
    import yaml
    from accelerate.utils import set_seed

    budget = TimeBudget(cfg.max_minutes, cfg.budget_plan_steps)  # the clock starts here (train/budget.py)
    obj_cls = get_objective_class(cfg.method)
    cfg = check_run(cfg, obj_cls)  # outside values converted to their declared types, or one line
    base_hp = obj_cls.default_hparams(cfg.hparams.get("preset")).to_dict()
    hp = obj_cls.HParams(**{k: v for k, v in {**base_hp, **cfg.hparams}.items() if k in base_hp})
    unknown_hp = set(cfg.hparams) - set(hp.to_dict()) - {"preset"}
    if unknown_hp:
        raise ValueError(f"unknown hyperparameters for {cfg.method}: {sorted(unknown_hp)}")
    global_batch = int(cfg.batch_size or hp.batch_size)
    if cfg.grad_accum > 1 and getattr(obj_cls, "batch_coupled", False):
        raise ValueError(f"--grad-accum {cfg.grad_accum}: the {cfg.method} loss couples the examples of a batch (in-batch "
                         f"negatives / cross-correlation), so accumulation would shrink the batch it sees to "
                         f"{global_batch // cfg.grad_accum}; use more processes or a smaller --batch-size instead")
    trackers = _trackers(cfg)
    acc = _accelerator(cfg, trackers)
    check_launch(acc)  # a launcher's process that formed no process group (train/nodes.py)
    world = acc.num_processes
    if global_batch % (world * cfg.grad_accum):
        raise ValueError(f"--batch-size {global_batch} is not divisible by world_size x grad_accum = {world * cfg.grad_accum}")
    local_batch = global_batch // (world * cfg.grad_accum)
    sampler = cfg.sampler or obj_cls.sampler
    facts = read_manifests(cfg.shards)
    if cfg.resume:  # method, encoder and frontend first: a changed frontend would fail the encoder setup below
        early = {"method": cfg.method, "encoder": cfg.encoder or obj_cls.default_encoder[0], "frontend": facts.frontend}
        main_decides(acc, lambda: check_resume(cfg.out, early))
    enc_name, enc_kwargs = _encoder_setup(cfg, obj_cls, int(facts.n_mels))
    set_seed(cfg.seed)
    encoder = build_checked(build_encoder, enc_name, enc_kwargs, "bad --encoder-arg", shown=cfg.encoder_kwargs)
    skw = _sampler_kwargs(cfg, sampler, obj_cls, hp, encoder, acc.device.type)
    smp = build_checked(build_sampler, sampler, skw, "bad --sampler-arg", shown=cfg.sampler_kwargs)
    smp.bind(facts)
    if cfg.init:
        load_weights(encoder, cfg.init, what="--init")
    check_pairing(obj_cls, smp, encoder, getattr(hp, "n_frames", None))
    from_data = obj_cls.data_hparams(list(facts.vocabulary), facts.num_clips or None, cfg.hparams)
    objective = build_objective(cfg.method, encoder, **{**cfg.hparams, **from_data})
    input_norm = objective.input_norm() or smp.input_norm  # what the encoder's inputs went through
    if world > 1 and acc.device.type == "cuda":  # torch's SyncBatchNorm runs on CUDA only; CPU ranks keep local BN
        objective = torch.nn.SyncBatchNorm.convert_sync_batchnorm(objective)
    layout = memory_format.apply(objective, cfg.memory_format)  # before the optimiser takes the parameters
    optimizer = build_optimizer(objective.param_groups(global_batch), hp)
    steps_per_epoch = facts.num_clips / global_batch if facts.num_clips else None
    cfg = dataclasses.replace(cfg, steps=budget.resolve_steps(cfg.steps, resolve_steps(cfg.steps, hp, steps_per_epoch),
                                                              cfg.out, cfg.resume, hp.schedule))
    scheduler = build_scheduler(optimizer, hp, cfg.steps, steps_per_epoch)
    objective.set_total_steps(cfg.steps)  # schedules inside the objective (e.g. an EMA ramp over the run)
    objective, optimizer, scheduler = acc.prepare(objective, optimizer, scheduler)
    run = Run(cfg, acc, objective, acc.unwrap_model(objective), optimizer, scheduler, facts, sampler, skw, input_norm,
              enc_name, enc_kwargs, global_batch, local_batch, trackers, os.path.join(cfg.out, "metrics.jsonl"),
              budget, hp, steps_per_epoch)
    asked = {"method": cfg.method, "encoder": enc_name, "encoder_kwargs": enc_kwargs, "frontend": facts.frontend}
    run.lock = main_decides(acc, lambda: claim(cfg.out, cfg.resume, cfg.overwrite, asked))  # the first write
    try:
        os.makedirs(cfg.out, exist_ok=True)
        _resume(run)
        write_node_record(cfg.out, acc)  # by each node's local rank 0 (train/nodes.py)
        # secrets (URL userinfo, signed-URL tokens in --shards and the command line) are never written
        resolved = redact_obj({**cfg.to_dict(), "encoder": enc_name, "encoder_kwargs": enc_kwargs, "sampler": sampler,
                               "hparams": hp.to_dict(), "global_batch": global_batch, "local_batch": local_batch,
                               "world_size": world, "memory_format_used": layout, "frontend": facts.frontend,
                               "manifest_sha256": _manifest_hashes(cfg.shards), "command": sys.argv})
        if acc.is_main_process:
            atomic_write_bytes(os.path.join(cfg.out, "config.yaml"), yaml.safe_dump(resolved, sort_keys=False).encode())
            if trackers:
                acc.init_trackers("melstream", config={k: v for k, v in resolved.items()
                                                       if isinstance(v, (int, float, str, bool))})
    except BaseException:
        run.release()
        raise
    return run


def _resume(run: Run) -> None:
    """``--resume``: load the latest checkpoint (and cut ``metrics.jsonl`` back to it); else start afresh."""
    cfg, acc = run.cfg, run.acc
    if cfg.resume:
        found = load_newest(acc, cfg.out)  # the newest intact one; damaged ones are skipped with a warning
        if found is None:
            acc.print(f"--resume: no checkpoint in {cfg.out}; starting from step 0")
            return
        run.step, path = found
        check_data_resume(read_data_state(path), _data_state(run), path)  # epoch order: any world size, same batch
        acc.print(f"resumed from {path} (step {run.step})")
        if acc.is_main_process:
            _truncate_metrics(run.metrics_path, run.step)
    elif acc.is_main_process and os.path.exists(run.metrics_path):
        os.unlink(run.metrics_path)


def train_step(run: Run, it: Any, info: Any) -> tuple[float, dict[str, torch.Tensor]]:
    """One optimiser step over ``grad_accum`` micro-batches; returns the (rank-averaged) loss and the
    objective's last output.  A non-finite loss on any rank stops every rank (:class:`NonFiniteLoss`)."""
    cfg, acc, objective = run.cfg, run.acc, run.objective
    for _ in range(cfg.grad_accum):
        raw = next(it)
        keys = raw.pop("__key__", [])
        if len(run.keys_read) < 4096:
            run.keys_read.extend(keys)
        batch = {k: (v.to(acc.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in raw.items()}
        if info.device_transform is not None:
            batch = info.device_transform.to(acc.device)(batch)
        with acc.accumulate(objective):
            out = objective(batch)
            loss = out["loss"]
            bad = torch.tensor(0.0 if torch.isfinite(loss.detach()).all() else 1.0, device=acc.device)
            if run.world > 1:
                bad = acc.reduce(bad, "sum")
            if bad.item() > 0:
                raise NonFiniteLoss(non_finite_message(float(loss.item()), run.step + 1, cfg.out))
            acc.backward(loss)
            if cfg.clip_grad and acc.sync_gradients:
                acc.clip_grad_norm_(objective.parameters(), cfg.clip_grad)
            run.optimizer.step()
            if acc.sync_gradients:
                run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
    run.unwrapped.after_step()
    run.step += 1
    lval = float(acc.reduce(loss.detach().float(), "mean").item()) if run.world > 1 else float(loss.item())
    run.losses.append(lval)
    return lval, out


def non_finite_message(loss: float, step: int, out: str) -> str:
    """What stopped the run and what is left -- only what is true: a checkpoint is named only if one
    exists (a run that diverges before its first checkpoint has none to resume from)."""
    head = f"non-finite loss ({loss}) at step {step}; stopping."
    found = latest_checkpoint(out)
    if found is None:
        return (f"{head} No checkpoint was written before it, so there is nothing to resume: start again "
                f"(e.g. with a lower learning rate or --clip-grad)")
    return (f"{head} The last checkpoint, {found[1]} (step {found[0]}), is kept: --resume continues from it "
            f"(e.g. with a lower learning rate or --clip-grad)")


def log_step(run: Run, lval: float, out: dict[str, torch.Tensor], info: Any, examples: int, seconds: float,
             probe: ProbeFn | None) -> None:
    """One ``metrics.jsonl`` row (+ tracker, progress bar); the probe's metrics when it is due."""
    cfg, acc = run.cfg, run.acc
    rec = {"step": run.step, "loss": lval, "lr": float(run.scheduler.get_last_lr()[0]),
           "examples_per_s": examples / max(seconds, 1e-9), "world_size": run.world,
           "corrupt_skipped": int(getattr(info, "skipped", 0) or 0)}
    rec.update({k: float(v) for k, v in out.items() if k != "loss" and torch.is_tensor(v) and v.numel() == 1})
    if probe is not None and cfg.probe_every and run.step % cfg.probe_every == 0 and acc.is_main_process:
        rec.update(probe(run.unwrapped.encoder, {"input_norm": run.input_norm,
                                                  "frontend": FrontendConfig.from_dict(run.facts.frontend)}))
        run.objective.train()
    if acc.is_main_process:
        with open(run.metrics_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if run.trackers:
            acc.log({k: v for k, v in rec.items() if k != "step"}, step=run.step)
        if run.bar is not None:
            run.bar.set_postfix(loss=f"{lval:.4f}", lr=f"{rec['lr']:.2e}", ex_s=f"{rec['examples_per_s']:.0f}")


def checkpoint(run: Run) -> None:
    """Training state (every rank's part) and the exported encoder (main process) at the current step."""
    save_checkpoint(run.acc, run.cfg.out, run.step, run.cfg.keep_last, {DATA_STATE: _data_state(run)})
    if run.acc.is_main_process:
        save_encoder(run.cfg.out, run.unwrapped.encoder, run.enc_name, run.enc_kwargs, run.facts.frontend,
                     run.cfg.method, run.step, run.input_norm)


def _data_state(run: Run) -> dict[str, Any]:
    return data_state(run.cfg.data_order, run.cfg.seed, run.step, run.global_batch, run.facts, run.world,
                      run.cfg.num_workers)


def _segment_loader(run: Run) -> tuple[Any, Any]:
    """The stream from the current step on (re-seeded at every checkpoint boundary; module docstring)."""
    cfg, acc = run.cfg, run.acc
    return build_loader(cfg.shards, run.sampler, run.local_batch, mode="train", seed=cfg.seed,
                        rank=acc.process_index, world_size=run.world, num_workers=cfg.num_workers,
                        resume_step=run.step, sampler_kwargs=run.sampler_kwargs, shuffle_buffer=cfg.shuffle_buffer,
                        expect_n_mels=int(run.enc_kwargs.get("n_mels", run.facts.n_mels)), return_keys=True,
                        data_order=cfg.data_order, grad_accum=cfg.grad_accum)


def train(cfg: TrainConfig, probe: ProbeFn | None = None) -> dict[str, Any]:
    """Run (or resume) one training job; returns a summary with the final step and losses.

    ``probe(encoder, ctx) -> metrics`` is called every ``cfg.probe_every`` steps on the main process
    (``ctx``: the run's ``frontend`` and ``input_norm``); ``eval/pretrain.py`` plugs the online probe in."""
    run = setup(cfg)
    try:
        return _run_steps(run, probe)
    finally:
        run.release()  # the run directory's lock: held from the first write to the last


def _run_steps(run: Run, probe: ProbeFn | None) -> dict[str, Any]:
    """The steps, checkpoints and the end of a prepared run."""
    cfg, acc = run.cfg, run.acc
    if progress_enabled(main_process=acc.is_main_process):  # a tty, or MELSTREAM_PROGRESS=1 (shards/progress.py)
        run.bar = progress_bar(cfg.steps, f"{cfg.method}/{run.enc_name}", "step", initial=run.step)
    t_last, n_last = time.perf_counter(), 0
    run.objective.train()
    while run.step < cfg.steps:
        seg_end = min((run.step // cfg.save_every + 1) * cfg.save_every, cfg.steps)
        loader, info = _segment_loader(run)
        it = iter(loader)
        while run.step < seg_end:
            lval, out = train_step(run, it, info)
            n_last += run.global_batch
            stop, replanned = run.budget.after_step(run.step, acc)
            if replanned:  # a time budget re-planned the run's length (train/budget.py)
                cfg = run.cfg = dataclasses.replace(cfg, steps=replanned)
                seg_end = min((run.step // cfg.save_every + 1) * cfg.save_every, cfg.steps)  # shorter or longer
                replan_scheduler(run.scheduler, run.hp, cfg.steps, run.steps_per_epoch)
                run.unwrapped.set_total_steps(cfg.steps)  # and the objective's own schedules (e.g. m2d's EMA ramp)
                if acc.is_main_process:
                    run.budget.save_plan(cfg.out, run.step)
                if run.bar is not None:  # the ETA follows the new plan
                    run.bar.total = cfg.steps
            if run.bar is not None:
                run.bar.update(1)
            if run.step % cfg.log_every == 0 or run.step == cfg.steps or stop:
                log_step(run, lval, out, info, n_last, time.perf_counter() - t_last, probe)
                t_last, n_last = time.perf_counter(), 0
            if stop:
                break
        if run.step % cfg.save_every == 0 or run.step >= cfg.steps or run.budget.stopped_by:
            checkpoint(run)
        del it, loader
        if run.budget.stopped_by:
            break
    return finish(run)


def finish(run: Run) -> dict[str, Any]:
    """Summary, trackers and the distributed teardown after the last step."""
    acc = run.acc
    if run.bar is not None:
        run.bar.close()
    stopped = run.budget.summary(run.step, run.cfg.steps)
    _write_summary(acc, run.cfg, run.unwrapped, run.step, run.losses, run.keys_read, stopped)
    acc.wait_for_everyone()
    acc.end_training()
    clean = shutdown_distributed()
    if run.world > 1:
        # Keep every object of this run alive: returning would run their destructors (DDP's reducer,
        # the gloo/NCCL group, Accelerate's state), and one of them blocked for good, holding the GIL,
        # once the peer rank had exited (caught with MELSTREAM_HANG_DUMP_S in CI-like runs).  A
        # distributed run ends with os._exit right after this (train/pretrain.py).
        _KEEP_ALIVE.append({"run": run})
    if not all(math.isfinite(v) for v in run.losses):
        raise NonFiniteLoss("non-finite loss logged")
    return {"step": run.step, "losses": run.losses, "stopped_by": stopped["stopped_by"], "world_size": run.world,
            "out": run.cfg.out, "clean_shutdown": clean, "is_main_process": acc.is_main_process}
