"""The task registry: ``TASKS`` name -> :class:`TaskSpec` subclass; every module of ``eval/tasks/`` is
imported on first lookup and registers its tasks with ``@TASKS.register("name")`` (one file per dataset family)."""
from __future__ import annotations

from shards.registry import Registry

from .base import TaskSpec

TASKS: Registry[type[TaskSpec]] = Registry("task", package="eval.tasks")


def load_all() -> Registry[type[TaskSpec]]:
    TASKS.discover()
    return TASKS


def get_task(name: str) -> type[TaskSpec]:
    return TASKS.get(name)
