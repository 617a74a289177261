"""Where xbench keeps data, caches and results on disk.

* data root: ``$XBENCH_DATA``, else ``$XDG_CACHE_HOME/xbench/data`` (``~/.cache/xbench/data``).
  Zenodo records extract to ``<data root>/zenodo/<record id>/`` (a record shared by two tasks is
  fetched once); tasks without a record use ``<data root>/local/<task name>/``.
* cache root (embeddings, probes): ``$XBENCH_CACHE``, else ``~/.cache/xbench/cache``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return Path(base).expanduser() if base else Path.home() / ".cache"


def data_root(root: str | Path | None = None) -> Path:
    """The data root: ``root`` if given, else ``$XBENCH_DATA``, else the per-user cache directory."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("XBENCH_DATA")
    return Path(env).expanduser() if env else _user_cache() / "xbench" / "data"


def cache_root(root: str | Path | None = None) -> Path:
    """The embedding/probe cache root: ``root``, else ``$XBENCH_CACHE``, else the per-user cache."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("XBENCH_CACHE")
    return Path(env).expanduser() if env else _user_cache() / "xbench" / "cache"


def record_dir(record_id: int | str, root: str | Path | None = None) -> Path:
    """Where the files of Zenodo record ``record_id`` are extracted."""
    return data_root(root) / "zenodo" / str(record_id)


def task_audio_dir(task: Any, root: str | Path | None = None) -> Path:
    """Folder holding a task's audio shards.

    ``task.data_dir`` (an explicit folder, e.g. for user tasks) wins; else the task's Zenodo record
    folder; else ``<data root>/local/<task.name>``.
    """
    explicit = getattr(task, "data_dir", None)
    if explicit:
        return Path(explicit).expanduser()
    if getattr(task, "zenodo_id", None):
        return record_dir(task.zenodo_id, root)
    return data_root(root) / "local" / task.name
