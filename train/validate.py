"""Checking values from outside (YAML, ``--hp``, ``--encoder-arg``, ``--sampler-arg``, ``encoder.json``).

Generated from the declared types, not one ``if`` per field: a value is converted to the type of the
dataclass field (``TrainConfig``, an objective's ``HParams``) or constructor parameter (encoders,
samplers) it is for, or refused with one line naming the field, the expected type and what was given.
A few lower bounds (:data:`TRAIN_BOUNDS`, :data:`HPARAM_BOUNDS`) and choices come on top; what only
a constructor knows (``d=-1``) is caught when it runs (:func:`build_checked`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from models import ENCODERS
from pipeline import SAMPLERS
from shards.typed import (  # noqa: F401  re-exported: the generic checks live in shards
    POSITIVE_KWARGS,
    ConfigError,
    build_checked,
    check_fields,
    coerce,
    coerce_kwargs,
    signature_params,
)

TRAIN_BOUNDS: dict[str, tuple[float, bool]] = {
    "steps": (1, False), "batch_size": (1, False), "grad_accum": (1, False), "save_every": (1, False),
    "keep_last": (1, False), "log_every": (1, False), "num_workers": (0, False), "shuffle_buffer": (0, False),
    "probe_every": (0, False), "clip_grad": (0, True), "init_timeout_s": (1, False),
    "max_minutes": (0, True), "budget_plan_steps": (2, False),
}
TRAIN_CHOICES: dict[str, tuple[str, ...]] = {"mixed_precision": ("no", "bf16", "fp16"),
                                             "tracker": ("auto", "tensorboard", "none"),
                                             "data_order": ("resampled", "epoch")}
HPARAM_BOUNDS: dict[str, tuple[float, bool]] = {
    "lr": (0, False), "batch_size": (1, False), "weight_decay": (0, False), "warmup_steps": (0, False),
    "warmup_epochs": (0, False), "epochs": (1, False), "total_steps": (1, False), "n_frames": (1, False),
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
