"""Objective base class, hyperparameter dataclass, EMA targets and the registry.

An objective owns the online encoder (``self.encoder``) and every head, target network and
queue, so ``accelerator.prepare(objective)`` wraps all of it (see docs/contracts.md).

Trainer-facing API of every objective class:

* ``@OBJECTIVES.register("name")`` on the class (it sets ``name``);
* class attributes ``sampler`` (default sampler), ``needs_frames``, ``needs_blocks``,
  ``batch_keys`` (keys ``forward`` reads), ``default_encoder`` (``(name, kwargs)``), ``frontend_preset``
  (the frontend the default encoder's input size comes from) and
  ``HParams`` (a dataclass with the paper defaults; ``cls.default_hparams()`` instantiates it);
* ``constructor_extras()`` (classmethod): the ``--hp`` keys the constructor takes itself (``preset``,
  keyword parameters such as ``num_classes``), read from its signature;
* ``forward(batch) -> {"loss": scalar, ...logged detached scalars}``;
* ``after_step()``: EMA / momentum update of target networks (call it on the *unwrapped*
  module after each optimiser step);
* ``param_groups()``: optimiser parameter groups with their base learning rates (trainable
  parameters only; EMA targets are excluded);
* ``check(encoder)`` (classmethod): ``ValueError`` with a one-line reason for impossible pairings.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
import torch.nn as nn

from shards.registry import Registry

__all__ = ["HParams", "Objective", "OBJECTIVES", "make_target", "ema_update", "probe_encoder"]


@dataclass
class HParams:
    """Optimisation hyperparameters shared by all objectives (subclasses add loss/head fields).

    ``lr`` is the base learning rate at ``batch_size``; when ``lr_scale_batch`` is true the
    trainer multiplies it by ``batch / 256``. ``schedule``: ``"constant"`` or
    ``"warmup_cosine"`` (linear warm-up over ``warmup_steps`` or ``warmup_epochs``, then cosine
    from ``lr`` to ``lr * final_lr_ratio`` at ``total_steps`` / ``epochs``).
    """

    optimizer: str = "adam"  # adam | sgd | lars
    lr: float = 1e-3
    batch_size: int = 256
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd / lars only
    betas: tuple[float, float] = (0.9, 0.999)  # adam only (Adam "default hyperparameters")
    schedule: str = "constant"
    warmup_steps: int = 0
    warmup_epochs: float = 0.0
    epochs: int | None = None
    total_steps: int | None = None
    final_lr_ratio: float = 0.0
    lr_scale_batch: bool = False
    ema_tau: float | None = None  # target / momentum-encoder decay, when the method has one
    n_frames: int = 96  # input frames N the method was trained with (used for shape probes / decoders)
    source: str = ""  # citation of the values above

    PRESETS: ClassVar[tuple[str, ...]] = ()  # names of classmethods giving another paper's values

    @classmethod
    def preset(cls, name: str | None) -> "HParams":
        """The defaults (``None``) or a named preset (``--hp preset=NAME``)."""
        if name is None:
            return cls()
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; this method has {list(cls.PRESETS) or 'none'}")
        return getattr(cls, name)()

    def replace(self, **kw: Any) -> "HParams":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_HParams = HParams  # the dataclass, for annotations inside Objective (whose HParams is a class attribute)


def make_target(module: nn.Module) -> nn.Module:
    """Deep copy of ``module`` with ``requires_grad=False`` on every parameter (EMA target)."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``p_t <- tau * p_t + (1 - tau) * p_o`` for parameters; buffers (BN statistics) are copied."""
    for p_t, p_o in zip(target.parameters(), online.parameters()):
        p_t.mul_(tau).add_(p_o.detach(), alpha=1.0 - tau)
    for b_t, b_o in zip(target.buffers(), online.buffers()):
        b_t.copy_(b_o)


@torch.no_grad()
def probe_encoder(encoder: nn.Module, method: str, n_frames: int) -> Any:
    """Run ``encoder.<method>`` on a zero input ``[1, 1, n_mels, n_frames]`` in eval mode
    (no state change) and return its output; used to learn block/frame shapes at construction."""
    n_mels = int(getattr(encoder, "n_mels", 64))
    try:
        p = next(encoder.parameters())
        device, dtype = p.device, p.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    was_training = encoder.training
    encoder.eval()
    try:
        return getattr(encoder, method)(torch.zeros(1, 1, n_mels, n_frames, device=device, dtype=dtype))
    finally:
        encoder.train(was_training)


OBJECTIVES: Registry[type["Objective"]] = Registry("objective", package="models.objectives")


class Objective(nn.Module):
    name: ClassVar[str] = ""
    sampler: ClassVar[str] = "crop"
    needs_frames: ClassVar[bool] = False
    needs_blocks: ClassVar[bool] = False
    batch_keys: ClassVar[tuple[str, ...]] = ()
    default_encoder: ClassVar[tuple[str, dict[str, Any]]] = ("mobile", {})
    #: the frontend preset of the method's paper: the trainer names it when the shards' mel bins do not
    #: match the default encoder's ``n_mels`` ("re-ingest with --preset ...")
    frontend_preset: ClassVar[str] = "hares"
    # True when the loss couples the examples of a batch (in-batch negatives, a cross-correlation
    # matrix): gradient accumulation would then shrink the batch the loss sees, so the trainer refuses it.
    batch_coupled: ClassVar[bool] = False
    HParams: ClassVar[type[HParams]] = HParams
    #: options for the default sampler (``build_sampler(cls.sampler, **cls.sampler_kwargs)``)
    sampler_kwargs: ClassVar[dict[str, Any]] = {}
    #: small settings for the test suite, which iterates :data:`OBJECTIVES`: ``hparams`` shrink the heads,
    #: ``encoder`` (``(name, kwargs)``) is a small real encoder for the trainer test (default: ``default_encoder``)
    test_config: ClassVar[dict[str, Any]] = {}

    #: pairs ``(target_attr, online_attr)`` updated by :meth:`after_step` with ``hparams.ema_tau``
    ema_pairs: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, encoder: nn.Module, **hparams: Any):
        super().__init__()
        base = self.HParams.preset(hparams.pop("preset", None)).to_dict()
        self.hparams: Any = self.HParams(**{**base, **hparams})  # the subclass's own dataclass
        self.check(encoder, n_frames=self.hparams.n_frames)
        self.encoder = encoder

    # ----------------------------------------------------------------- trainer API
    @classmethod
    def default_hparams(cls, preset: str | None = None) -> "_HParams":
        return cls.HParams.preset(preset)

    @classmethod
    def constructor_extras(cls) -> frozenset[str]:
        """``--hp`` keys the constructor consumes itself rather than as ``HParams`` values: ``preset``
        (popped by :meth:`__init__`) and the keyword parameters of the subclass's ``__init__``."""
        params = inspect.signature(cls.__init__).parameters.values()
        own = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - {"self", "encoder"}
        return frozenset({"preset"} | own)

    @classmethod
    def check(cls, encoder: nn.Module, n_frames: int | None = None) -> None:
        """Raise ``ValueError`` (one line) if ``encoder`` cannot serve this objective.

        ``n_frames``: input length used when the check has to run the encoder (default: the
        method's ``HParams.n_frames``)."""
        name = getattr(encoder, "name", type(encoder).__name__)
        if not callable(getattr(encoder, "forward", None)):
            raise ValueError(f"{cls.name}: encoder {name} has no forward()")
        if not isinstance(getattr(encoder, "embedding_dim", None), int) or encoder.embedding_dim < 1:
            raise ValueError(f"{cls.name}: encoder {name} has no integer embedding_dim")
        n = n_frames or cls.HParams().n_frames
        if cls.needs_frames:
            if not callable(getattr(encoder, "frames", None)) or not getattr(encoder, "frame_dim", None):
                raise ValueError(f"{cls.name}: encoder {name} has no frames() (this method needs frame embeddings)")
            out = cls._probe(encoder, "frames", n, name)
            if not (torch.is_tensor(out) and out.dim() == 3):
                raise ValueError(f"{cls.name}: frames() must return [B, T', d], got {getattr(out, 'shape', type(out))}")
        if cls.needs_blocks:
            if not callable(getattr(encoder, "blocks", None)):
                raise ValueError(f"{cls.name}: encoder {name} has no blocks() (this method needs block outputs)")
            out = cls._probe(encoder, "blocks", n, name)
            if not isinstance(out, (list, tuple)) or not out or any(not torch.is_tensor(b) or b.dim() != 4 for b in out):
                raise ValueError(f"{cls.name}: blocks() of encoder {name} must return a non-empty list of [B, C, F, T]")

    @classmethod
    def _probe(cls, encoder: nn.Module, method: str, n_frames: int, name: str) -> Any:
        try:
            return probe_encoder(encoder, method, n_frames)
        except NotImplementedError:
            raise ValueError(f"{cls.name}: {method}() of encoder {name} is unavailable") from None

    @classmethod
    def data_hparams(cls, vocabulary: list[str], num_clips: int | None = None,
                     given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Hyperparameters that follow from the training data (its label ``vocabulary``, its ``num_clips``
        when known); ``given`` are the ones the user set, which a data-derived value must not override.
        ``ValueError`` (one line) when the data cannot serve this objective. Default: none."""
        return {}

    @classmethod
    def sampler_options(cls, hp: Any, encoder: nn.Module) -> dict[str, Any]:
        """Options this objective gives its sampler from its hyperparameters and encoder (e.g. a masking
        ratio and the patch grid); the trainer passes each one only to sampler parts that take it."""
        return {}

    def set_total_steps(self, steps: int) -> None:
        """The run's length in optimiser steps, told before step 1 (schedules inside the objective)."""

    def input_norm(self) -> dict[str, Any] | None:
        """Normalisation the objective applies to its inputs itself (``encoder.json`` ``input_norm``),
        or ``None`` when the encoder sees the sampler's output as it is."""
        return None

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def after_step(self) -> None:
        """EMA update of the target networks (no-op for objectives without targets)."""
        if not self.ema_pairs:
            return
        tau = float(self.hparams.ema_tau)
        for tgt, onl in self.ema_pairs:
            ema_update(getattr(self, tgt), getattr(self, onl), tau)

    def trainable_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def param_groups(self, batch_size: int | None = None) -> list[dict[str, Any]]:
        """One group with all trainable parameters at ``hparams.lr`` (scaled by batch/256 when
        ``lr_scale_batch``) and ``hparams.weight_decay``."""
        lr = self._scaled_lr(self.hparams.lr, batch_size)
        params = [p for _, p in self.trainable_named_parameters()]
        return [{"name": "all", "params": params, "lr": lr, "weight_decay": self.hparams.weight_decay}]

    def weight_bias_groups(self, batch_size: int | None = None) -> list[dict[str, Any]]:
        """Two groups, as Barlow Twins (Zbontar et al. 2021, Sec. 4) and DeLoRes-M train: weights (ndim > 1)
        at ``hparams.lr`` with ``hparams.weight_decay``; biases and normalisation parameters at
        ``hparams.lr_bias`` without weight decay (and, under LARS, without adaptation), both scaled by
        batch/256 when ``lr_scale_batch``."""
        hp = self.hparams
        named = self.trainable_named_parameters()
        return [
            {"name": "weights", "params": [p for _, p in named if p.ndim > 1],
             "lr": self._scaled_lr(hp.lr, batch_size), "weight_decay": hp.weight_decay},
            {"name": "bias_bn", "params": [p for _, p in named if p.ndim <= 1],
             "lr": self._scaled_lr(getattr(hp, "lr_bias"), batch_size), "weight_decay": 0.0},
        ]

    # ----------------------------------------------------------------- helpers
    def _scaled_lr(self, lr: float, batch_size: int | None) -> float:
        if not self.hparams.lr_scale_batch:
            return lr
        b = self.hparams.batch_size if batch_size is None else batch_size
        return lr * b / 256.0

    @staticmethod
    def _detach_logs(**logs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in logs.items()}

    @staticmethod
    def _require(batch: dict[str, torch.Tensor], *keys: str) -> list[torch.Tensor]:
        missing = [k for k in keys if k not in batch]
        if missing:
            raise KeyError(f"batch lacks key(s) {missing}; has {sorted(batch)}")
        return [batch[k] for k in keys]

    def extra_repr(self) -> str:
        return f"name={self.name!r}, sampler={self.sampler!r}"

