"""Evaluation tasks: one module per dataset family, all registered in :data:`TASKS`.

``get_task(name).load(root)`` returns a :class:`TaskData` with every clip, its labels and its
official split or fold; ``get_task(name).locate(data_root)`` finds the dataset folder under
``--data-root``.  Layouts: docs/evaluation.md.
"""
from .base import Clip, LayoutError, TaskData, TaskSpec, Window
from .registry import TASKS, get_task, load_all

__all__ = ["Clip", "LayoutError", "TaskData", "TaskSpec", "Window", "TASKS", "get_task", "load_all"]
