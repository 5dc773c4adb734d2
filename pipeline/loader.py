"""``build_loader``: the one call the trainer and evaluators make."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader

from shards.frontend import FrontendConfig

from .dataset import MelStream, SkipCounter
from .epoch_stream import StepBatches
from .manifests import DatasetFacts, check_frontend, read_manifests
from .samplers.base import Sampler, build_sampler


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """Explicit values, else ``torch.distributed`` when initialised, else env ``RANK``/``WORLD_SIZE``, else 0/1."""
    if rank is None or world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            r, w = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            r, w = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        rank = r if rank is None else rank
        world_size = w if world_size is None else world_size
    return int(rank), int(world_size)


@dataclass
class LoaderInfo:
    """What ``build_loader`` returns next to the loader: merged manifest facts and live counters."""

    facts: DatasetFacts
    sampler: Sampler
    mode: str
    batch_size: int
    rank: int
    world_size: int
    num_workers: int
    seed: int
    resume_step: int
    crops_per_clip: int
    skipped: SkipCounter
    batches_per_rank: int | None = None
    device_transform: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    frontend = property(lambda self: self.facts.frontend)
    n_mels = property(lambda self: self.facts.n_mels)
    frame_rate = property(lambda self: self.facts.frame_rate)
    vocabulary = property(lambda self: self.facts.vocabulary)
    mean = property(lambda self: self.facts.mean)
    std = property(lambda self: self.facts.std)
    num_clips = property(lambda self: self.facts.num_clips)
    num_shards = property(lambda self: self.facts.num_shards)
    keys = property(lambda self: tuple(self.sampler.keys) + ("valid",))

    @property
    def stats(self) -> dict[str, float]:
        return {"mean": self.facts.mean, "std": self.facts.std}

    @property
    def input_norm(self) -> dict[str, Any] | None:
        """What the sampler did to encoder inputs (for ``encoder.json`` ``input_norm``)."""
        return self.sampler.input_norm

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def as_dict(self) -> dict[str, Any]:
        return {"frontend": self.frontend, "n_mels": self.n_mels, "vocabulary": self.vocabulary, "stats": self.stats,
                "num_clips": self.num_clips, "num_shards": self.num_shards, "sampler": self.sampler.name,
                "sampler_config": self.sampler.config(), "mode": self.mode, "batch_size": self.batch_size,
                "rank": self.rank, "world_size": self.world_size, "num_workers": self.num_workers, "seed": self.seed,
                "resume_step": self.resume_step, "crops_per_clip": self.crops_per_clip,
                "batches_per_rank": self.batches_per_rank, "input_norm": self.input_norm,
                "skipped": self.skipped.as_dict()}


def build_loader(shard_dirs: list[str] | str, sampler: str | Sampler, batch_size: int, mode: str = "train", seed: int = 0,
                 rank: int | None = None, world_size: int | None = None, num_workers: int = 0, resume_step: int = 0,
                 expect_n_mels: int | None = None, expect_frontend: FrontendConfig | None = None, sampler_kwargs: dict | None = None,
                 shuffle_buffer: int = 1000, pin_memory: bool | None = None, crops_per_clip: int = 1,
                 allow_pipe: bool = False, return_keys: bool = False, prefetch_factor: int | None = None,
                 data_order: str = "resampled", grad_accum: int = 1) -> tuple[Any, LoaderInfo]:
    """A DataLoader of batch dicts (``docs/contracts.md``) over shard directories (paths or URLs).

    ``mode='train'``: endless, resampled, shuffled, seeded by (seed, rank, worker, resume_step).
    ``mode='eval'``: one pass, every clip once across ranks and workers, ``len(loader)`` equal batches of
    exactly ``batch_size`` rows per rank, repeats marked ``valid = False``.
    ``expect_n_mels`` / ``expect_frontend`` (a ``FrontendConfig``) stop with a clear message on mismatch.
    ``crops_per_clip`` > 1 draws several examples per decoded clip (more throughput, less diversity).
    ``return_keys`` adds ``__key__`` (list of clip keys) to every batch, for checks and debugging.
    ``data_order='epoch'`` (training): every clip once per epoch in an order fixed by (seed, step, dataset)
    for a global batch of ``batch_size * world_size * grad_accum`` rows, whatever the world size and
    workers; ``resume_step`` seeks to that step, and the loader yields ``grad_accum`` micro-batches of
    ``batch_size`` rows per step (``pipeline/epoch_plan.py``, docs/training.md).
    """
    if isinstance(shard_dirs, str):
        shard_dirs = [shard_dirs]
    facts = read_manifests(shard_dirs, allow_pipe=allow_pipe)
    check_frontend(facts, expect_n_mels=expect_n_mels, expect_frontend=expect_frontend)
    smp = sampler if isinstance(sampler, Sampler) else build_sampler(sampler, **(sampler_kwargs or {}))
    if isinstance(sampler, Sampler) and sampler_kwargs:
        raise ValueError("sampler_kwargs only apply when the sampler is given by name")
    smp.bind(facts)
    rank, world_size = resolve_rank(rank, world_size)
    counter = SkipCounter()
    ds = MelStream(facts, smp, batch_size, mode=mode, seed=seed, rank=rank, world_size=world_size,
                   num_workers=num_workers, resume_step=resume_step, shuffle_buffer=shuffle_buffer,
                   crops_per_clip=crops_per_clip, allow_pipe=allow_pipe, return_keys=return_keys, counter=counter,
                   order=data_order, grad_accum=grad_accum)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    kw: dict[str, Any] = {}
    if num_workers > 0 and prefetch_factor is not None:
        kw["prefetch_factor"] = prefetch_factor
    loader: Any = DataLoader(ds, batch_size=None, num_workers=num_workers, pin_memory=bool(pin_memory), **kw)
    extra: dict[str, Any] = {"data_order": ds.order}
    if ds.order == "epoch":
        loader = StepBatches(loader, ds.layout, grad_accum)
        extra.update(global_batch=ds.global_batch, steps_per_epoch=ds.plan_epoch.steps_per_epoch,
                     block=ds.block, lane_groups=ds.layout.groups, lane_phases=ds.layout.phases)
    info = LoaderInfo(facts=facts, sampler=smp, mode=mode, batch_size=batch_size, rank=rank, world_size=world_size,
                      num_workers=num_workers, seed=seed, resume_step=resume_step, crops_per_clip=crops_per_clip,
                      skipped=counter, batches_per_rank=len(ds) if mode == "eval" else None,
                      device_transform=smp.device_transform(), extra=extra)
    return loader, info
