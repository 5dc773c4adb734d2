"""The task registry: ``TASKS`` name -> :class:`TaskSpec`; loader modules register on import."""
from __future__ import annotations

import importlib
from typing import Any

from .base import TaskSpec

TASKS: dict[str, TaskSpec] = {}

FAMILIES = ("speech_commands", "esc50", "urbansound8k", "nsynth", "voxceleb", "voxforge", "librispeech", "musan",
            "tut", "bird", "magnatagatune", "fsd50k", "audioset", "fluent", "generic", "demo")


def register(**kw: Any) -> TaskSpec:
    spec = TaskSpec(**kw)
    if spec.name in TASKS:
        raise KeyError(f"task {spec.name!r} registered twice")
    TASKS[spec.name] = spec
    return spec


_loaded = False


def load_all() -> dict[str, TaskSpec]:
    global _loaded
    if not _loaded:
        _loaded = True
        for fam in FAMILIES:
            importlib.import_module(f"eval.tasks.{fam}")
    return TASKS


def get_task(name: str) -> TaskSpec:
    load_all()
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None
