"""melstream pipeline: log-mel shards -> WebDataset stream -> samplers -> batch dicts (docs/pipeline.md).

Public API::

    loader, info = pipeline.build_loader(shard_dirs, sampler, batch_size, mode='train'|'eval', ...)
    pipeline.SAMPLERS, pipeline.build_sampler(name, **kw), pipeline.read_manifests(dirs)
"""
from .dataset import MelStream, SkipCounter
from .epoch_plan import EpochPlan, RankLayout, dataset_fingerprint
from .loader import LoaderInfo, build_loader, resolve_rank
from .manifests import DatasetFacts, FrontendMismatch, check_frontend, read_manifests
from .samplers import SAMPLERS, Sampler, build_sampler

__all__ = [
    "build_loader", "LoaderInfo", "resolve_rank", "SAMPLERS", "Sampler", "build_sampler",
    "read_manifests", "check_frontend", "DatasetFacts", "FrontendMismatch", "MelStream", "SkipCounter",
    "EpochPlan", "RankLayout", "dataset_fingerprint",
]
