"""Checking values from outside (YAML, ``--hp``, ``--encoder-arg``, ``--sampler-arg``, ``encoder.json``).

Generated from the declared types, not one ``if`` per field: a value is converted to the type of the
dataclass field (``TrainConfig``, an objective's ``HParams``) or constructor parameter (encoders,
samplers) it is for, or refused with one line naming the field, the expected type and what was given.
Bounds (:data:`TRAIN_BOUNDS`, :data:`HPARAM_BOUNDS`) and choices come on top: every value that sizes
a resource (processes, buffers, batches, disk, widths, time) has a floor and a ceiling, checked before
anything is started (docs/sharing.md lists them); floats must be finite.  What only a constructor
knows (``d=-1``) is caught when it runs (:func:`build_checked`).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from models import ENCODERS
from pipeline import SAMPLERS
from shards.typed import (  # noqa: F401  re-exported: the generic checks live in shards
    POSITIVE_KWARGS,
    Bound,
    ConfigError,
    build_checked,
    check_fields,
    coerce,
    coerce_kwargs,
    signature_params,
)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# DataLoader worker processes per rank: 4 per CPU this process may run on, at most 64 (each worker is a
# process with its own copy of the sampler and shuffle buffer; more than the CPUs only adds memory)
MAX_WORKERS = min(64, 4 * _cpus())
MAX_STEPS = 10**9
MAX_BATCH = 1 << 16
_WORKERS_WHY = f"4 per CPU, at most 64: this machine has {_cpus()} CPUs"
_MEM = "held in memory"
TRAIN_BOUNDS: dict[str, Bound] = {
    "steps": (1, False, MAX_STEPS), "batch_size": (1, False, MAX_BATCH, _MEM),
    "grad_accum": (1, False, 1024), "save_every": (1, False, MAX_STEPS), "keep_last": (1, False, 1000, "each on disk"),
    "log_every": (1, False, MAX_STEPS), "num_workers": (0, False, MAX_WORKERS, _WORKERS_WHY),
    "shuffle_buffer": (0, False, 100_000, "samples held per worker"), "probe_every": (0, False, MAX_STEPS),
    "clip_grad": (0, True), "init_timeout_s": (1, False, 86_400, "one day"), "max_minutes": (0, True, 525_600, "a year"),
    "budget_plan_steps": (2, False, 1_000_000), "seed": (0, False, 2**32 - 1),
}
TRAIN_CHOICES: dict[str, tuple[str, ...]] = {"mixed_precision": ("no", "bf16", "fp16"),
                                             "tracker": ("auto", "tensorboard", "none"),
                                             "data_order": ("resampled", "epoch"),
                                             "memory_format": ("auto", "channels_last", "contiguous")}
_WIDTH: Bound = (1, False, 65_536, "a size this large would exhaust memory")
_DEPTH: Bound = (0, False, 256, "layers or heads")
HPARAM_BOUNDS: dict[str, Bound] = {
    "lr": (0, False), "batch_size": (1, False, MAX_BATCH, _MEM), "weight_decay": (0, False), "warmup_steps": (0, False, MAX_STEPS),
    "warmup_epochs": (0, False, 1_000_000), "epochs": (1, False, 1_000_000), "total_steps": (1, False, MAX_STEPS),
    "n_frames": (1, False, 100_000, "frames per crop"), "ema_tau": (0, False, 1), "momentum": (0, False),
    "final_lr_ratio": (0, False),
    # sizes of heads, projectors, predictors, decoders and queues: allocated when the objective is built
    **{k: _WIDTH for k in ("hidden", "proj_hidden", "proj_dim", "head_dim", "decoder_dim", "predictor_dim",
                          "proj_units", "out_dim", "block_proj_units")},
    **{k: _DEPTH for k in ("decoder_depth", "predictor_depth", "proj_layers", "decoder_heads", "predictor_heads")},
    "queue_size": (1, False, 1 << 22, "embeddings held in memory"), "context_slices": (1, False, 64),
    "bn_splits": (1, False, 1024),
}


def check_run(cfg: Any, obj_cls: Any) -> Any:
    """``cfg`` (a ``TrainConfig``) with its ``--hp``/``--encoder-arg``/``--sampler-arg`` values converted to
    the types of the method's ``HParams``, the encoder's and the sampler's constructors; unknown encoder
    and sampler names or arguments are refused here, before anything is written."""
    extras = obj_cls.constructor_extras()  # handled by the objective's constructor, not as HParams fields
    hp_fields = {f.name for f in dataclasses.fields(obj_cls.HParams)}
    known = {k: v for k, v in cfg.hparams.items() if k in hp_fields and k not in extras}
    hparams = {**cfg.hparams, **check_fields(obj_cls.HParams, known, lambda k: f"--hp {k}", HPARAM_BOUNDS)}
    enc = cfg.encoder or obj_cls.default_encoder[0]
    if enc not in ENCODERS:
        raise ConfigError(f"unknown encoder {enc!r}; choose from {', '.join(sorted(ENCODERS))}")
    enc_kwargs = coerce_kwargs([ENCODERS[enc]], cfg.encoder_kwargs, "bad --encoder-arg", enc)
    sampler = cfg.sampler or obj_cls.sampler
    parts = [p.strip() for p in str(sampler).split("+")]
    for p in parts:
        if p not in SAMPLERS:
            raise ConfigError(f"unknown sampler {p!r}; choose from {', '.join(sorted(SAMPLERS))} (compose with '+')")
    smp_kwargs = coerce_kwargs([SAMPLERS[p] for p in parts], cfg.sampler_kwargs, "bad --sampler-arg", sampler)
    return dataclasses.replace(cfg, hparams=hparams, encoder_kwargs=enc_kwargs, sampler_kwargs=smp_kwargs)
