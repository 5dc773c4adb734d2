"""The task registry: ``TASKS`` name -> :class:`TaskSpec`; every module of ``eval/tasks/`` is imported
on first lookup and registers its tasks (one file per dataset family)."""
from __future__ import annotations

from typing import Any

from shards.registry import Registry

from .base import TaskSpec

TASKS: Registry[TaskSpec] = Registry("task", package="eval.tasks")


def register(**kw: Any) -> TaskSpec:
    spec = TaskSpec(**kw)
    return TASKS.add(spec.name, spec)


def load_all() -> Registry[TaskSpec]:
    TASKS.discover()
    return TASKS


def get_task(name: str) -> TaskSpec:
    return TASKS.get(name)
