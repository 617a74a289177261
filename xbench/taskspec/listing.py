"""What ``xbench ls`` and ``xbench describe`` show about tasks: their shards on disk and one row per task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xbench.core.enums import Track
from xbench.core.paths import task_audio_dir
from xbench.data.shard_patterns import ShardMatch, resolve_shards
from xbench.taskspec.config import TaskConfig

__all__ = ["data_status", "shard_matches", "task_shards", "task_table"]


def shard_matches(task: TaskConfig, data_root: str | Path | None = None) -> dict[Any, ShardMatch]:
    """Each split's (or fold's) shard pattern resolved in the task's data folder, as the run resolves it."""
    folder = task_audio_dir(task, data_root)
    return {unit: resolve_shards(folder, pattern) for unit, pattern in task.audio_tar_name_of_split.items()}


def task_shards(task: TaskConfig, data_root: str | Path | None = None) -> dict[Any, list[Path]]:
    """The audio shards present for each split (or fold) of ``task`` (see :func:`shard_matches`)."""
    return {unit: list(match.found) for unit, match in shard_matches(task, data_root).items()}


def data_status(task: TaskConfig, data_root: str | Path | None = None) -> str:
    """``yes`` (every split has all its shards), ``partial`` or ``no``."""
    matches = shard_matches(task, data_root).values()
    if all(match.complete for match in matches):
        return "yes"
    return "partial" if any(match.found for match in matches) else "no"


def task_table(tasks: dict[str, TaskConfig], data_root: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per task: what ``ls`` prints."""
    rows = []
    for task in tasks.values():
        flags = [flag for flag in ("private", "disabled") if getattr(task, flag)]
        rows.append(
            {
                "name": task.name,
                "formal_name": task.formal_name,
                "domain": task.domain,
                "task_type": task.task_type,
                "metric": task.metric,
                "tracks": [Track.MLP.value, Track.KNN.value] if task.do_knn else [Track.MLP.value],
                "eval_weight": task.eval_weight,
                "flags": flags,
                "data": data_status(task, data_root),
                "data_dir": str(task_audio_dir(task, data_root)),
            }
        )
    return rows
