"""Stable public path for task declarations (``from xbench.task_config import TaskConfig``).

See :mod:`xbench.taskspec.config`.
"""

from xbench.taskspec.config import LabelSpec, TaskConfig, TaskConfigError

__all__ = ["LabelSpec", "TaskConfig", "TaskConfigError"]
