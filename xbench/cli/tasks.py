"""``xbench ls`` and ``xbench describe``: the registered tasks (:mod:`xbench.taskspec.listing`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from xbench.cli.common import add_data_root, add_json, add_tasks_dir, print_json, user_errors


def register(subparsers: Any) -> None:
    """Add ``ls`` and ``describe``."""
    ls = subparsers.add_parser(
        "ls",
        help="list the benchmark tasks",
        description="List the registered tasks: domain, metric, tracks, eval weight, flags and whether "
        "their audio shards are present.",
    )
    add_tasks_dir(ls)
    add_data_root(ls)
    ls.add_argument(
        "--type",
        dest="task_types",
        type=_task_type,
        action="append",
        metavar="TYPE",
        help="only tasks of this task type (xbench.taskspec.config.TASK_TYPES; repeatable)",
    )
    add_json(ls, "print the table as JSON")
    ls.set_defaults(func=_ls)

    describe = subparsers.add_parser(
        "describe",
        help="show every field of one task",
        description="Print every field of one task declaration. The --json output (to_dict plus its "
        "fingerprint) is itself a declaration: saved as NAME.json it loads with --tasks-dir.",
    )
    describe.add_argument("task", help="task name (or formal name)")
    add_tasks_dir(describe)
    add_data_root(describe)
    add_json(describe, "print the declaration (to_dict) and its fingerprint as JSON")
    describe.set_defaults(func=_describe)


def _task_type(text: str) -> str:
    """``argparse`` type of ``--type``: checked against the task types known when the command line is parsed."""
    from xbench.taskspec.config import TASK_TYPES

    if text not in TASK_TYPES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a task type ({', '.join(TASK_TYPES)})")
    return text


def _fmt_weight(weight: float) -> str:
    return str(int(weight)) if float(weight).is_integer() else f"{weight:g}"


def _ls(args: argparse.Namespace) -> int:
    from xbench.taskspec.config import TaskConfigError
    from xbench.taskspec.listing import task_table
    from xbench.taskspec.registry import load_tasks

    with user_errors(TaskConfigError):
        tasks = load_tasks(args.tasks_dir)
    if args.task_types:
        tasks = {name: task for name, task in tasks.items() if task.task_type in args.task_types}
    rows = task_table(tasks, args.data_root)
    if args.json:
        print_json(rows)
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


def _describe(args: argparse.Namespace) -> int:
    from xbench.core.paths import task_audio_dir
    from xbench.taskspec.config import TaskConfigError
    from xbench.taskspec.listing import data_status
    from xbench.taskspec.registry import TaskNotFoundError, get_task

    with user_errors(TaskNotFoundError, TaskConfigError):
        task = get_task(args.task, args.tasks_dir)
    data = task.to_dict()
    if args.json:
        print_json({**data, "fingerprint": task.fingerprint()})
        return 0
    width = max(len(k) for k in data)
    for key, value in data.items():
        print(f"{key.ljust(width)}  {_describe_value(key, value)}")
    print(f"{'splits'.ljust(width)}  {json.dumps([[str(u), g] for u, g in task.splits()])}")
    print(f"{'data_folder'.ljust(width)}  {task_audio_dir(task, args.data_root)} ({data_status(task, args.data_root)})")
    print(f"{'fingerprint'.ljust(width)}  {task.fingerprint()}")
    return 0
