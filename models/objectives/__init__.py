"""Training objectives (heads, losses, targets, queues) behind a registry.

``build_objective(name, encoder, **hparams)`` -> :class:`Objective`; ``OBJECTIVES`` maps names to
classes. See :mod:`models.objectives.base` for the trainer-facing API and docs/objectives.md for
formulas, paper hyperparameters and the choices made where the papers are vague.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from . import losses
from .barlow import BarlowHParams, BarlowTwinsObjective
from .base import OBJECTIVES, HParams, Objective, ema_update, make_target
from .byol import ByolAObjective, ByolHParams
from .byol_a_v2 import ByolAV2HParams, ByolAV2Objective
from .m2d import M2DHParams, M2DObjective
from .mae import MAEHParams, MAEObjective
from .cola import ColaHParams, ColaObjective
from .delores_m import DeLoResMHParams, DeLoResMObjective
from .multi_strategy import MultiStrategyHParams, MultiStrategyObjective
from .reconstruction import (
    Audio2VecCBoW,
    Audio2VecSkipGram,
    AutoEncoderObjective,
    ReconstructionHParams,
)
from .simclr import SimCLRHParams, SimCLRObjective
from .supervised import SupervisedHParams, SupervisedObjective
from .temporal_gap import TemporalGapHParams, TemporalGapObjective
from .triplet import TripletHParams, TripletObjective

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
    "AutoEncoderObjective",
    "Audio2VecCBoW",
    "Audio2VecSkipGram",
    "TemporalGapObjective",
    "TripletObjective",
    "ColaObjective",
    "MultiStrategyObjective",
    "ByolAObjective",
    "BarlowTwinsObjective",
    "DeLoResMObjective",
    "SimCLRObjective",
    "SupervisedObjective",
    "ReconstructionHParams",
    "TemporalGapHParams",
    "TripletHParams",
    "ColaHParams",
    "MultiStrategyHParams",
    "ByolHParams",
    "BarlowHParams",
    "DeLoResMHParams",
    "SimCLRHParams",
    "SupervisedHParams",
    "ByolAV2Objective", "ByolAV2HParams", "MAEObjective", "MAEHParams", "M2DObjective", "M2DHParams",
]


def get_objective_class(name: str) -> type[Objective]:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise KeyError(f"unknown objective {name!r}; known: {sorted(OBJECTIVES)}") from None


def default_hparams(name: str) -> HParams:
    """The paper-default hyperparameter dataclass of objective ``name``."""
    return get_objective_class(name).default_hparams()


def build_objective(name: str, encoder: nn.Module, **hparams: Any) -> Objective:
    """Build objective ``name`` around ``encoder``; ``hparams`` override the dataclass defaults
    (plus constructor extras: ``decoder=`` for the reconstruction objectives, ``num_classes=`` for
    ``supervised``). Raises ``ValueError`` for impossible encoder pairings (``cls.check``)."""
    return get_objective_class(name)(encoder, **hparams)
