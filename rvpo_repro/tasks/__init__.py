"""Tasks: data sets, reward channels and evaluation, looked up by name in a registry.

A task module defines a `Task` subclass with a config schema and registers it with
`@register_task("name")`; `conf/task/<name>.yaml` selects it with `name: <name>`.
"""

from __future__ import annotations

from rvpo_repro.tasks import custom, rubric, rubric_toy, toolrl, toy_constraints  # noqa: F401  (each registers itself)
from rvpo_repro.tasks.base import (
    TASKS,
    Task,
    TaskData,
    TaskInputError,
    get_task,
    prepare_config,
    register_task,
)

__all__ = ["TASKS", "Task", "TaskData", "TaskInputError", "get_task", "prepare_config", "register_task"]
