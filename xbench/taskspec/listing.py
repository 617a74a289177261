"""``xbench ls`` and ``xbench describe``: list the registered tasks and show one task's every field."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from xbench.core.paths import task_audio_dir
from xbench.taskspec.config import TaskConfig, TaskConfigError
from xbench.taskspec.registry import TaskNotFoundError, get_task, load_tasks

__all__ = ["add_task_commands", "data_status", "expand_braces", "task_shards", "task_table"]

_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


def expand_braces(pattern: str) -> list[str]:
    """Shell-style brace expansion of ``{a,b}`` and ``{00..02}`` (zero padding kept), left to right."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    end = pattern.find("}", start)
    if end < 0:
        return [pattern]
    head, body, tail = pattern[:start], pattern[start + 1 : end], pattern[end + 1 :]
    match = _RANGE.match(body)
    if match:
        lo, hi = int(match[1]), int(match[2])
        width = len(match[1]) if match[1].startswith("0") and len(match[1]) > 1 else 0
        step = 1 if hi >= lo else -1
        options = [str(i).zfill(width) for i in range(lo, hi + step, step)]
    else:
        options = body.split(",")
    return [head + option + rest for option in options for rest in expand_braces(tail)]


def task_shards(task: TaskConfig, data_root: str | Path | None = None) -> dict[Any, list[Path]]:
    """The audio shards present for each split (or fold) of ``task``, as X-ARES finds them.

    A pattern with ``*``/``?``/``[`` is globbed in the task's data folder; otherwise it is brace-expanded
    and only existing files are listed.
    """
    folder = task_audio_dir(task, data_root)
    found: dict[Any, list[Path]] = {}
    for unit, pattern in task.audio_tar_name_of_split.items():
        if any(ch in pattern for ch in "*?["):
            paths = sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []
        else:
            paths = [folder / name for name in expand_braces(pattern) if (folder / name).is_file()]
        found[unit] = paths
    return found


def data_status(task: TaskConfig, data_root: str | Path | None = None) -> str:
    """``yes`` (every split has shards), ``partial`` or ``no``."""
    shards = task_shards(task, data_root)
    have = sum(1 for paths in shards.values() if paths)
    return "yes" if have == len(shards) else ("partial" if have else "no")


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
                "tracks": ["mlp", "knn"] if task.do_knn else ["mlp"],
                "eval_weight": task.eval_weight,
                "flags": flags,
                "data": data_status(task, data_root),
                "data_dir": str(task_audio_dir(task, data_root)),
            }
        )
    return rows


def _fmt_weight(weight: float) -> str:
    return str(int(weight)) if float(weight).is_integer() else f"{weight:g}"


def _cmd_ls(args: argparse.Namespace) -> int:
    try:
        tasks = load_tasks(args.tasks_dir)
    except TaskConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = task_table(tasks, args.data_root)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    header = ("task", "domain", "metric", "tracks", "weight", "flags", "data")
    lines = [
        (
            r["name"],
            r["domain"],
            r["metric"],
            "+".join(r["tracks"]),
            _fmt_weight(r["eval_weight"]),
            ",".join(r["flags"]) or "-",
            r["data"],
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    for line in (header, *lines):
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())
    downloaded = sum(1 for r in rows if r["data"] == "yes")
    print(f"{len(rows)} tasks, {downloaded} with data")
    return 0


def _describe_value(key: str, value: Any) -> str:
    if key == "labels":
        shown = dict(value)
        classes = shown.get("classes")
        if classes is not None and len(classes) > 12:
            shown["classes"] = [*classes[:10], f"... {len(classes) - 10} more"]
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "-" if value is None else str(value)


def _cmd_describe(args: argparse.Namespace) -> int:
    try:
        task = get_task(args.task, args.tasks_dir)
    except (TaskNotFoundError, TaskConfigError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    data = task.to_dict()
    if args.json:
        data["fingerprint"] = task.fingerprint()
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    width = max(len(k) for k in data)
    for key, value in data.items():
        print(f"{key.ljust(width)}  {_describe_value(key, value)}")
    print(f"{'splits'.ljust(width)}  {json.dumps([[str(u), g] for u, g in task.splits()])}")
    print(f"{'data_folder'.ljust(width)}  {task_audio_dir(task, args.data_root)} ({data_status(task, args.data_root)})")
    print(f"{'fingerprint'.ljust(width)}  {task.fingerprint()}")
    return 0


def add_task_commands(subparsers: Any) -> None:
    """Register ``ls`` and ``describe`` on an ``argparse`` sub-parsers object (``parser.add_subparsers()``)."""
    ls = subparsers.add_parser(
        "ls",
        help="list the benchmark tasks",
        description="List the registered tasks: domain, metric, tracks, eval weight, flags and whether "
        "their audio shards are present.",
    )
    ls.add_argument("--tasks-dir", default=None, help="also load task declarations (*.py, *.json) from DIR")
    ls.add_argument("--data-root", default=None, help="data root (default: $XBENCH_DATA or ~/.cache/xbench/data)")
    ls.add_argument("--json", action="store_true", help="print the table as JSON")
    ls.set_defaults(func=_cmd_ls)

    describe = subparsers.add_parser(
        "describe", help="show every field of one task", description="Print every field of one task declaration."
    )
    describe.add_argument("task", help="task name (or formal name)")
    describe.add_argument("--tasks-dir", default=None, help="also load task declarations (*.py, *.json) from DIR")
    describe.add_argument("--data-root", default=None, help="data root (default: $XBENCH_DATA or ~/.cache/xbench/data)")
    describe.add_argument("--json", action="store_true", help="print the declaration (to_dict) as JSON")
    describe.set_defaults(func=_cmd_describe)
