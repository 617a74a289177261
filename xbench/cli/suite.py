"""``xbench suite build NAME`` and ``xbench suite path NAME``: the built-in suites (:mod:`xbench.suites.offline`)."""

from __future__ import annotations

import argparse
from typing import Any

from xbench.cli.common import add_json, add_tasks_dir, print_json, user_errors
from xbench.suites.offline import SUITES


def register(subparsers: Any) -> None:
    """Add ``suite`` (``build``, ``path``)."""
    suite = subparsers.add_parser("suite", help="build and locate built-in suites (offline)")
    sub = suite.add_subparsers(dest="suite_command", required=True)
    build = sub.add_parser(
        "build",
        help="generate a suite's shards and task declarations",
        description="Generate the offline suite (TTS speech and SoundFont music, seeded, byte-identical on "
        "rebuild). Default folder: <data root>/suites/<name> ('-small' appended with --small).",
    )
    build.add_argument("name", choices=SUITES, help="suite to build")
    build.add_argument("--small", action="store_true", help="a small size for unit tests (< 1 min)")
    build.add_argument("--out", default=None, help="output folder (default: <data root>/suites/<name>[-small])")
    build.add_argument(
        "--partial",
        action="store_true",
        help="where a system source is missing (no root), build that pool's PyPI-only variant (tasks *_pypi)",
    )
    build.add_argument("--jobs", type=int, default=0, help="worker processes (default: cores, at most 2)")
    build.set_defaults(func=_build)
    path = sub.add_parser(
        "path", help="print the tasks folder of a built suite", description="Exit 1 when the suite is not built."
    )
    path.add_argument("name", help="suite name")
    add_tasks_dir(path, "a tasks folder to try first")
    path.add_argument("--data-root", metavar="DIR", default=None, help="data root (default: $XBENCH_DATA)")
    add_json(path, "print the folder and its manifest as JSON")
    path.set_defaults(func=_path)


def _build(args: argparse.Namespace) -> int:
    from xbench.suites.offline.builder import SuiteError, build_suite, default_jobs

    with user_errors(SuiteError):
        tasks_dir = build_suite(
            args.out, small=args.small, partial=args.partial, jobs=args.jobs or default_jobs(), log=print
        )
    print(f"run it: xbench run --encoder logmel --tasks-dir {tasks_dir} --suite {args.name}")
    return 0


def _path(args: argparse.Namespace) -> int:
    from xbench.suites.offline.builder import SuiteError, find_suite_tasks_dir, read_manifest

    with user_errors(SuiteError, code=1):
        folder = find_suite_tasks_dir(args.name, args.tasks_dir, args.data_root)
    if args.json:
        print_json({"tasks_dir": str(folder), "manifest": read_manifest(folder)})
    else:
        print(folder)
    return 0
