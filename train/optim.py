"""Optimisers and learning-rate schedules named by the objectives' paper hyperparameters.

* ``adam`` -- torch Adam (Tagliasacchi et al. 2019, Kuroyanagi & Komatsu 2022, Niizumi et al. 2021, Wang et al. 2022).
* ``sgd`` -- SGD with momentum (DeLoRes-M, Ghosh et al. 2022 Sec. 3).
* ``lars`` -- timm's LARS (Barlow Twins / DeLoRes-S, Ghosh et al. 2022): weight groups are adapted with
  the trust ratio, bias/BN groups excluded from adaptation and weight decay (their group flag).
Schedules: ``constant`` or ``warmup_cosine`` (linear warm-up, then cosine to ``final_lr_ratio``).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable

import torch


def build_optimizer(groups: list[dict[str, Any]], hp: Any) -> torch.optim.Optimizer:
    name = hp.optimizer
    if name == "adam":
        return torch.optim.Adam(groups, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
    if name == "lars":
        from timm.optim import Lars

        for g in groups:  # biases and norms: no trust-ratio adaptation (Barlow Twins recipe)
            if g.get("name") == "bias_bn":
                g["trust_clip"] = False
                g["always_adapt"] = False
                g["weight_decay"] = 0.0
            else:  # timm adapts only when weight decay != 0 unless told to: keep LARS with --hp weight_decay=0
                g["always_adapt"] = True
        return Lars(groups, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay,
                    trust_coeff=getattr(hp, "lars_trust_coeff", 1e-3))
    raise ValueError(f"unknown optimizer {name!r} (adam, adamw, sgd, lars)")


def warmup_steps_for(hp: Any, steps: int, steps_per_epoch: float | None) -> int:
    if hp.warmup_steps:
        return int(hp.warmup_steps)
    if hp.warmup_epochs and steps_per_epoch:
        return int(round(hp.warmup_epochs * steps_per_epoch))
    return 0


def lr_multiplier(hp: Any, total_steps: int, steps_per_epoch: float | None = None) -> Callable[[int], float]:
    """The per-step multiplier of each group's base lr for a run of ``total_steps`` optimiser steps;
    warm-up is capped at 1/10 of a short run."""
    if hp.schedule == "constant":
        return lambda s: 1.0
    if hp.schedule != "warmup_cosine":
        raise ValueError(f"unknown schedule {hp.schedule!r}")
    want = warmup_steps_for(hp, total_steps, steps_per_epoch)
    warm = min(want, max(total_steps // 10, 1))
    if warm < want:
        logging.getLogger("melstream.train").warning(
            "warm-up of %d steps capped at %d (1/10 of a %d-step run)", want, warm, total_steps)
    final = float(hp.final_lr_ratio)

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(total_steps - warm, 1)
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return f


def build_scheduler(opt: torch.optim.Optimizer, hp: Any, total_steps: int,
                    steps_per_epoch: float | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`lr_multiplier` (``constant`` or ``warmup_cosine``)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_multiplier(hp, total_steps, steps_per_epoch))


def replan_scheduler(scheduler: Any, hp: Any, total_steps: int, steps_per_epoch: float | None = None) -> None:
    """Re-plan a running schedule for a new run length (``--max-minutes``): the multiplier of the
    current step is taken from the new plan at once; the step count is kept."""
    sch = getattr(scheduler, "scheduler", scheduler)  # Accelerate wraps it
    f = lr_multiplier(hp, total_steps, steps_per_epoch)
    sch.lr_lambdas = [f] * len(sch.optimizer.param_groups)
    for g, base in zip(sch.optimizer.param_groups, sch.base_lrs):
        g["lr"] = base * f(sch.last_epoch)
    sch._last_lr = [g["lr"] for g in sch.optimizer.param_groups]
