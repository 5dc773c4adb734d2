"""Trainer configuration: one dataclass, exposed as CLI flags and loadable from YAML.

Precedence: dataclass defaults < method (paper) defaults < ``--config FILE.yaml`` < CLI flags.
Objective hyperparameters (lr, optimiser, schedule, EMA tau, head sizes ...) are overridden with
``--hp key=value`` (repeatable) or an ``hparams:`` mapping in the YAML file; encoder and sampler
arguments likewise with ``--encoder-arg`` / ``--sampler-arg`` or ``encoder_kwargs:`` / ``sampler_kwargs:``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from shards.bounded import MAX_TEXT_BYTES, BoundError, load_yaml_bounded, parse_yaml_bounded
from shards.typed import short_repr

from .validate import TRAIN_BOUNDS, TRAIN_CHOICES, ConfigError, check_fields


@dataclass
class TrainConfig:
    method: str = ""  # required (--method or the config file): a name in models.objectives.OBJECTIVES
    encoder: str | None = None  # default: the method's paper encoder
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    sampler: str | None = None  # default: the method's sampler
    sampler_kwargs: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    shards: list[str] = field(default_factory=lambda: ["data/demo/pretrain"])
    out: str = "runs/default"
    steps: int | None = None  # default: the method's paper length (total_steps, or epochs of the shards)
    max_minutes: float | None = None  # wall-clock budget (train/budget.py); stops at the next step boundary
    budget_plan_steps: int = 20  # without --steps: plan the schedule from the steps/s of the first N steps
    batch_size: int | None = None  # global batch (all processes, one optimiser step); default: paper value
    grad_accum: int = 1
    clip_grad: float | None = None
    mixed_precision: str = "no"  # no | bf16 | fp16
    memory_format: str = "auto"  # auto | channels_last | contiguous (models/memory_format.py)
    seed: int = 0
    num_workers: int = 2
    shuffle_buffer: int = 1000
    data_order: str = "resampled"  # resampled | epoch (docs/training.md)
    log_every: int = 10
    save_every: int = 500
    keep_last: int = 3
    resume: bool = False
    overwrite: bool = False  # replace the run already in --out (without it, such a run is refused)
    init: str | None = None  # encoder weights to start from (official BYOL-A .pth or encoder.safetensors)
    probe_every: int = 0
    probe_task: str = "demo_family"
    probe_data_root: str = "data/demo_audio"
    tracker: str = "auto"  # auto | tensorboard | none
    init_timeout_s: int = 600

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_HELP = {
    "method": "training method (objective + its paper defaults)",
    "encoder": "encoder name (default: the method's)",
    "shards": "one or more shard directories or URLs (checked for one frontend)",
    "out": "run directory (checkpoints, metrics.jsonl, config.yaml, encoder.safetensors)",
    "steps": "optimiser steps (default: the paper's training length: its total_steps, or its epochs over the shards' clips)",
    "batch_size": "global batch per optimiser step, split over processes and accumulation steps",
    "max_minutes": "wall-clock budget in minutes: stop at the first step boundary after it, checkpoint and export "
                   "(without --steps the lr schedule is planned from the measured steps/s; see train/budget.py)",
    "budget_plan_steps": "with --max-minutes and no --steps: measure steps/s over the first N steps (or a tenth "
                         "of the budget) and plan the run length and lr schedule from it",
    "grad_accum": "gradient accumulation steps",
    "clip_grad": "clip the global gradient norm to this value",
    "mixed_precision": "no | bf16 | fp16",
    "memory_format": "auto (channels_last when the model has 2-D convolutions: ~1.5x faster steps for conv "
                     "encoders on CPU) | channels_last | contiguous",
    "num_workers": "DataLoader worker processes per rank",
    "data_order": "resampled (shards drawn with replacement; exact resume at the same world size and workers) | "
                  "epoch (every clip once per epoch; exact resume on any world size and workers; docs/training.md)",
    "save_every": "checkpoint every N steps (the data stream is re-seeded at each checkpoint)",
    "keep_last": "keep the newest K checkpoints",
    "resume": "continue from the newest checkpoint in --out (its method, encoder and frontend must match)",
    "overwrite": "replace the run already in --out (its checkpoints, weights, config and metrics are deleted); "
                 "without --resume or --overwrite, a --out that holds a run is refused",
    "init": "initial encoder weights (.pth with official keys, or encoder.safetensors)",
    "probe_every": "run the online probe every N steps (0: off)",
}


def _scalar(v: str, where: str = "value") -> Any:
    """``"1e-3"`` -> 0.001 (YAML 1.1 would keep it a string), ints, bools, lists via (bounded) YAML."""
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return parse_yaml_bounded(v, where)


def parse_kv(items: list[str] | None, flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items or []:
        if "=" not in it:
            raise SystemExit(f"error: {flag} expects key=value, got {short_repr(it)}")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = _scalar(v, f"{flag} {k.strip()}")
        except BoundError as e:
            raise SystemExit(f"error: {e}") from None
        bad = _non_finite(out[k.strip()], f"{flag} {k.strip()}")
        if bad:
            raise SystemExit(f"error: {bad}")
    return out


def _non_finite(value: Any, where: str) -> str | None:
    """``"<where>: expected a finite number, got inf"`` for the first nan/inf in ``value`` (numbers,
    lists, mappings), else ``None``: no field takes a non-finite number (docs/sharing.md)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where}: expected a finite number, got {value}"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for k, v in items:
        bad = _non_finite(v, f"{where}.{k}")
        if bad:
            return bad
    return None


def build_parser(methods: list[str], encoders: list[str], prog: str = "train/pretrain.py") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Self-supervised pretraining on melstream shards. "
                    f"Methods: {', '.join(methods)}. Encoders: {', '.join(encoders)}.",
    )
    ap.add_argument("--config", help="YAML file with TrainConfig fields (CLI flags override it)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("encoder_kwargs", "sampler_kwargs", "hparams"):
            continue
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"dest": f.name, "default": None, "help": _HELP.get(f.name)}
        if f.name == "method":
            kw["choices"] = methods
        if f.name == "encoder":
            kw["choices"] = encoders
        if f.type in ("bool", bool):
            ap.add_argument(flag, action="store_true", **{k: v for k, v in kw.items() if k != "default"}, default=None)
        elif f.name == "shards":
            ap.add_argument(flag, nargs="+", **kw)
        else:
            typ = {"int": int, "float": float, "int | None": int, "float | None": float}.get(str(f.type), str)
            ap.add_argument(flag, type=typ, **kw)
    ap.add_argument("--hp", action="append", metavar="KEY=VALUE", help="objective hyperparameter override")
    ap.add_argument("--encoder-arg", action="append", metavar="KEY=VALUE", help="encoder constructor argument")
    ap.add_argument("--sampler-arg", action="append", metavar="KEY=VALUE", help="sampler argument")
    return ap


def read_yaml(path: str) -> Any:
    """A YAML file, or ``SystemExit`` with one line naming the file (and the line of a syntax error).
    Read with bounds (``shards.bounded``): at most 1 MiB, and at most 100 000 nodes once its aliases
    are expanded, so an alias bomb or ``/dev/zero`` is refused at once."""
    try:
        return load_yaml_bounded(path, MAX_TEXT_BYTES)
    except OSError as e:
        raise SystemExit(f"error: {path}: {e.strerror or e}") from None
    except BoundError as e:
        raise SystemExit(f"error: {e}") from None


def load_config(argv: list[str] | None, methods: list[str], encoders: list[str], prog: str = "train/pretrain.py") -> TrainConfig:
    ap = build_parser(methods, encoders, prog)
    a = ap.parse_args(argv)
    data: dict[str, Any] = {}
    from_cli: set[str] = set()
    if a.config:
        loaded = read_yaml(a.config) or {}
        if not isinstance(loaded, dict):
            raise SystemExit(f"error: {a.config}: expected a mapping of TrainConfig fields")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = set(loaded) - known
        if unknown:
            raise SystemExit(f"error: {a.config}: unknown fields {short_repr(sorted(map(str, unknown)))}")
        data.update(loaded)
    for f in dataclasses.fields(TrainConfig):
        v = getattr(a, f.name, None)
        if v is not None:
            data[f.name] = v
            from_cli.add(f.name)
    for key, flag, attr in (("hparams", "--hp", "hp"), ("encoder_kwargs", "--encoder-arg", "encoder_arg"),
                            ("sampler_kwargs", "--sampler-arg", "sampler_arg")):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise SystemExit(f"error: {a.config}: {key}: expected a mapping, got {short_repr(data[key])}")
        merged = dict(data.get(key) or {})
        merged.update(parse_kv(getattr(a, attr), flag))
        data[key] = merged
    if data.get("method") not in methods:
        raise SystemExit(f"error: unknown method {data.get('method')!r}; choose from {methods}")
    try:  # every field converted to its declared type and checked, from the dataclass (train/validate.py)
        data = check_fields(TrainConfig, data, lambda k: "--" + k.replace("_", "-") if k in from_cli else f"{a.config}: {k}",
                            TRAIN_BOUNDS, TRAIN_CHOICES)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    cfg = TrainConfig(**data)
    if cfg.resume and cfg.overwrite:
        raise SystemExit("error: --resume and --overwrite: pick one (continue the run in --out, or replace it)")
    for key in ("hparams", "encoder_kwargs", "sampler_kwargs"):  # what the dataclass types do not cover
        bad = _non_finite(data[key], f"{a.config}: {key}" if a.config else key)
        if bad:
            raise SystemExit(f"error: {bad}")
    try:
        json.dumps(cfg.to_dict())  # everything must be serialisable into config.yaml
    except (TypeError, ValueError) as e:
        raise SystemExit(f"error: {a.config or 'the configuration'}: not serialisable ({e})") from None
    return cfg
