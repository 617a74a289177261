"""Find task declarations: the built-in ``xbench.tasks`` folder plus an optional user ``--tasks-dir``.

A declaration is one file: ``<name>.py`` defining ``TASK = TaskConfig(...)``, or ``<name>.json`` holding a
``TaskConfig.to_dict()`` dump. Relative ``labels.classes_file`` and ``data_dir`` paths resolve against
the declaration file's folder. Adding a task means adding one file; a name declared twice is an error.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.util
import json
from pathlib import Path

from xbench.taskspec.config import LabelError, TaskConfig, TaskConfigError

__all__ = ["TaskNotFoundError", "builtin_tasks_dir", "get_task", "load_task_file", "load_tasks"]


class TaskNotFoundError(LookupError):
    """No task of that name; the message suggests close names."""


def builtin_tasks_dir() -> Path:
    """The folder of the built-in declarations (the ``xbench.tasks`` package)."""
    import xbench.tasks

    return Path(xbench.tasks.__file__).resolve().parent


def _declaration_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix in (".py", ".json")]
    return sorted(p for p in files if not p.name.startswith(("_", ".")))


def _import_declaration(path: Path) -> TaskConfig:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"_xbench_task_{path.stem}_{digest}", path)
    if spec is None or spec.loader is None:
        raise TaskConfigError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (TaskConfigError, LabelError) as exc:
        raise TaskConfigError(f"{path}: {exc}") from None
    task = getattr(module, "TASK", None)
    if not isinstance(task, TaskConfig):
        raise TaskConfigError(f"{path}: must define TASK = TaskConfig(...), found {type(task).__name__}")
    return task


def _read_json_declaration(path: Path) -> TaskConfig:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TaskConfigError(f"{path}: not a readable JSON task declaration: {exc}") from None
    try:
        return TaskConfig.from_dict(data)
    except (TaskConfigError, LabelError) as exc:
        raise TaskConfigError(f"{path}: {exc}") from None


def load_task_file(path: str | Path) -> TaskConfig:
    """Load one declaration (``.py`` or ``.json``), its class list read and ``data_dir`` made absolute."""
    path = Path(path).expanduser().resolve()
    task = _import_declaration(path) if path.suffix == ".py" else _read_json_declaration(path)
    changes: dict[str, object] = {}
    try:
        labels = task.labels.with_classes_from(path.parent)
    except LabelError as exc:
        raise TaskConfigError(f"{path}: task {task.name!r}: field 'labels': {exc}") from None
    if labels is not task.labels:
        changes["labels"] = labels
    if task.data_dir and not Path(task.data_dir).expanduser().is_absolute():
        changes["data_dir"] = str((path.parent / task.data_dir).resolve())
    if changes:
        try:
            task = dataclasses.replace(task, **changes)  # re-validates: class count == output_dim
        except (TaskConfigError, LabelError) as exc:
            raise TaskConfigError(f"{path}: {exc}") from None
    return task


def load_tasks(tasks_dir: str | Path | None = None) -> dict[str, TaskConfig]:
    """Every declared task by name: the built-in ones, then those in ``tasks_dir`` if given."""
    folders = [builtin_tasks_dir()]
    if tasks_dir is not None:
        user = Path(tasks_dir).expanduser().resolve()
        if not user.is_dir():
            raise TaskConfigError(f"--tasks-dir {str(tasks_dir)!r} is not a folder")
        if user != folders[0]:
            folders.append(user)
    tasks: dict[str, TaskConfig] = {}
    origin: dict[str, Path] = {}
    for folder in folders:
        for path in _declaration_files(folder):
            task = load_task_file(path)
            if task.name in tasks:
                raise TaskConfigError(f"task {task.name!r} is declared twice: in {origin[task.name]} and in {path}")
            tasks[task.name] = task
            origin[task.name] = path
    return dict(sorted(tasks.items()))


def get_task(name: str, tasks_dir: str | Path | None = None) -> TaskConfig:
    """The task called ``name`` (exact, else case-insensitive name or formal name)."""
    tasks = load_tasks(tasks_dir)
    if name in tasks:
        return tasks[name]
    folded = [t for t in tasks.values() if name.casefold() in (t.name.casefold(), t.formal_name.casefold())]
    if len(folded) == 1:
        return folded[0]
    close = difflib.get_close_matches(name, list(tasks), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise TaskNotFoundError(f"unknown task {name!r}{hint} (known: {', '.join(tasks)})")
