"""``xbench suite build offline [--small] [--out DIR]`` and ``xbench suite path offline``."""

from __future__ import annotations

import argparse
import json
import sys

from xbench.suites.offline.builder import (
    SUITE,
    SuiteError,
    build_suite,
    default_jobs,
    default_suite_dir,
    find_suite_tasks_dir,
    read_manifest,
)


def _cmd_build(args: argparse.Namespace) -> int:
    try:
        tasks_dir = build_suite(
            args.out, small=args.small, partial=args.partial, jobs=args.jobs or default_jobs(), log=print
        )
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"run it: xbench run --encoder logmel --tasks-dir {tasks_dir} --suite {args.name}")
    return 0


def _cmd_path(args: argparse.Namespace) -> int:
    try:
        folder = find_suite_tasks_dir(args.name, args.tasks_dir, args.data_root)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"tasks_dir": str(folder), "manifest": read_manifest(folder)}, indent=2))
    else:
        print(folder)
    return 0


def add_suite_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``xbench suite`` (``build``, ``path``) on the main parser's sub-commands."""
    suite = subparsers.add_parser("suite", help="build and locate built-in suites (offline)")
    sub = suite.add_subparsers(dest="suite_command", required=True)
    build = sub.add_parser(
        "build",
        help="generate a suite's shards and task declarations",
        description="Generate the offline suite (TTS speech and SoundFont music, seeded, byte-identical on "
        f"rebuild). Default folder: {default_suite_dir()} ('-small' appended with --small).",
    )
    build.add_argument("name", choices=(SUITE,), help="suite to build")
    build.add_argument("--small", action="store_true", help="a small size for unit tests (< 1 min)")
    build.add_argument("--out", default=None, help="output folder (default: <data root>/suites/<name>[-small])")
    build.add_argument(
        "--partial",
        action="store_true",
        help="where a system source is missing (no root), build that pool's PyPI-only variant (tasks *_pypi)",
    )
    build.add_argument("--jobs", type=int, default=0, help="worker processes (default: cores, at most 2)")
    build.set_defaults(func=_cmd_build)
    path = sub.add_parser("path", help="print the tasks folder of a built suite")
    path.add_argument("name", help="suite name")
    path.add_argument("--tasks-dir", default=None, help="a tasks folder to try first")
    path.add_argument("--data-root", default=None, help="data root (default: $XBENCH_DATA)")
    path.add_argument("--json", action="store_true", help="print the folder and its manifest as JSON")
    path.set_defaults(func=_cmd_path)
