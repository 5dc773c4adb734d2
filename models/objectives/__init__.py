"""Training objectives (heads, losses, targets, queues) behind a registry.

``build_objective(name, encoder, **hparams)`` -> :class:`Objective`; ``OBJECTIVES`` maps names to
classes; every module of this folder is imported on first lookup (one file per method).  See
:mod:`models.objectives.base` for the trainer-facing API and docs/objectives.md for formulas, paper
hyperparameters and the choices made where the papers are vague.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from . import losses
from .base import OBJECTIVES, HParams, Objective, ema_update, make_target

__all__ = [
    "OBJECTIVES",
    "Objective",
    "HParams",
    "build_objective",
    "get_objective_class",
    "default_hparams",
    "make_target",
    "ema_update",
    "losses",
]


def get_objective_class(name: str) -> type[Objective]:
    return OBJECTIVES.get(name)


def default_hparams(name: str) -> HParams:
    """The paper-default hyperparameter dataclass of objective ``name``."""
    return get_objective_class(name).default_hparams()


def build_objective(name: str, encoder: nn.Module, **hparams: Any) -> Objective:
    """Build objective ``name`` around ``encoder``; ``hparams`` override the dataclass defaults
    (plus constructor extras: ``decoder=`` for the reconstruction objectives, ``num_classes=`` for
    ``supervised``). Raises ``ValueError`` for impossible encoder pairings (``cls.check``)."""
    return get_objective_class(name)(encoder, **hparams)
