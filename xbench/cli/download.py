"""``xbench download``: fetch and verify the Zenodo records of tasks (:func:`xbench.data.download.download_tasks`)."""

from __future__ import annotations

import argparse
from typing import Any

from xbench.cli.common import add_tasks_dir, user_errors


def register(subparsers: Any) -> None:
    """Add ``download TASK... [--data-root] [--offline] [--mirror] [--keep-archives] [--verify] [--tasks-dir]``."""
    parser = subparsers.add_parser(
        "download",
        help="download and verify the Zenodo data of tasks",
        description=(
            "Fetch each task's Zenodo record into <data root>/zenodo/<record id>/, resuming partial files, "
            "verifying sizes and md5s, and extracting archives safely. Private tasks are never downloaded. "
            "--verify fetches nothing and rechecks every downloaded file against the checksums recorded at "
            "download. Exit 1 while some task's data is missing, corrupt or failed."
        ),
    )
    parser.add_argument("tasks", nargs="+", metavar="TASK", help="task names")
    parser.add_argument("--data-root", metavar="DIR", default=None, help="data root (default: $XBENCH_DATA)")
    parser.add_argument(
        "--offline", action="store_true", help="no network: list missing files and where they go (or use --mirror)"
    )
    parser.add_argument("--mirror", metavar="DIR", default=None, help="copy records from DIR/<record id>/<file>")
    parser.add_argument("--keep-archives", action="store_true", help="keep zip/tar.gz archives after extraction")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="fetch nothing: recheck every downloaded file (and extracted member) against its recorded checksum, "
        "and a task without a Zenodo record against its declaration's checksums",
    )
    add_tasks_dir(parser, "extra folder of task declarations")
    parser.set_defaults(func=_download)


def _download(args: argparse.Namespace) -> int:
    from xbench.data.download import download_tasks
    from xbench.taskspec.registry import get_task

    with user_errors(LookupError, ValueError, OSError, ImportError):
        tasks = [get_task(name, args.tasks_dir) for name in args.tasks]
    results = download_tasks(
        tasks,
        root=args.data_root,
        offline=args.offline,
        mirror=args.mirror,
        keep_archives=args.keep_archives,
        verify=args.verify,
    )
    for result in results:
        print(result.line())
    return 0 if all(r.ok for r in results) else 1
