"""``xbench leaderboard``: merge runs into X-ARES's README layout (:mod:`xbench.report.leaderboard`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from xbench.cli.common import user_errors
from xbench.core.enums import Protocol, PublishedTable, choices


def register(subparsers: Any) -> None:
    """Add ``leaderboard``."""
    board = subparsers.add_parser(
        "leaderboard",
        help="merge runs into an X-ARES-style leaderboard",
        description="Merge result folders, summary.json files or long CSVs into X-ARES's README layout "
        "(tasks x encoders, MLP and kNN, public and all weighted averages), a long CSV and an averages CSV.",
    )
    board.add_argument("results", nargs="+", help="result folder, summary.json, result JSON or long CSV; NAME=PATH")
    board.add_argument("--out", required=True, help="leaderboard CSV (README layout); siblings -long.csv etc.")
    board.add_argument("--protocol", choices=choices(Protocol), default=None, help="keep only results of this protocol")
    board.add_argument(
        "--published",
        nargs="?",
        const=PublishedTable.README.value,
        choices=choices(PublishedTable),
        help=f"add X-ARES's published table (protocol {Protocol.XARES}); "
        f"{PublishedTable.V0_1_3} swaps in the newer LibriSpeech values",
    )
    board.add_argument("--common-tasks", action="store_true", help="average only tasks every encoder has")
    board.add_argument("--plot", default=None, metavar="DIR", help="also write PNG and SVG plots into DIR")
    board.set_defaults(func=_leaderboard)


def _leaderboard(args: argparse.Namespace) -> int:
    from xbench.report.leaderboard import LeaderboardError, load_published, load_results, merge, write_leaderboard

    with user_errors(LeaderboardError):
        frames = [load_results(s) for s in args.results]
        if args.published:
            frames.append(load_published(args.published))
        long = merge(frames, protocol=args.protocol, common_tasks=args.common_tasks)
    tasks = long.groupby(["encoder", "track"]).task.nunique().unstack(fill_value=0)
    if not args.common_tasks and (tasks.nunique() > 1).any():
        print(
            "warning: the encoders cover different tasks, so their averages are over different task sets "
            "(use --common-tasks to restrict to the shared ones):\n" + tasks.to_string(),
            file=sys.stderr,
        )
    paths = write_leaderboard(long, args.out)
    print(paths["markdown"].read_text(), end="")
    if args.plot:
        from xbench.report.plots import write_plots

        written = write_plots(long, args.plot)
        print(f"plots: {len(written)} files in {args.plot}")
    print("wrote: " + ", ".join(str(p) for p in paths.values()))
    return 0
