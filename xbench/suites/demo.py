"""README command 1's engine: build the offline suite, score a few encoders on it, write a leaderboard.

``python -m xbench.suites.demo`` (called by ``scripts/demo.sh``) builds the suite if needed, runs each encoder
through :func:`xbench.pipeline.run.evaluate` on both tracks and prints the leaderboard. Into ``<results>``
(default ``results/runs/offline``) it writes :func:`xbench.report.leaderboard.write_leaderboard`'s files
(``leaderboard.csv`` in X-ARES's README layout with the weighted averages, ``leaderboard-long.csv``,
``leaderboard-averages.csv``, ``leaderboard.md``) and ``leaderboard.png`` / ``leaderboard.svg`` (per-task scores
with their 95 % intervals and each encoder's weighted average, one panel per track).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from xbench.pipeline.run import RunOptions, evaluate
from xbench.report.leaderboard import merge, write_leaderboard
from xbench.report.plots import write_overview
from xbench.suites.offline import SUITE, SuiteError, build_suite, default_suite_dir, suite_tasks
from xbench.suites.offline.builder import default_jobs, read_manifest

DEFAULT_ENCODERS = ("logmel", "resemblyzer", "openwakeword")


def ensure_suite(folder: Path, small: bool, rebuild: bool, partial: bool) -> Path:
    """The suite's tasks folder under ``folder``, building it first when absent (or ``rebuild``)."""
    tasks_dir = folder / "tasks"
    manifest = read_manifest(tasks_dir)
    wanted = "small" if small else "full"
    if rebuild or manifest is None or manifest.get("size") != wanted:
        build_suite(folder, small=small, partial=partial, jobs=default_jobs())
    return tasks_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xbench.suites.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default=",".join(DEFAULT_ENCODERS), help="comma-separated zoo names")
    parser.add_argument("--small", action="store_true", help="use the small suite (quick)")
    parser.add_argument("--suite-dir", default=None, help="suite folder (default: <data root>/suites/offline)")
    parser.add_argument("--results", default="results/runs/offline", help="where the leaderboard goes")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the suite even when it exists")
    parser.add_argument("--partial", action="store_true", help="build only the pools whose sources are installed")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap rounds for the 95%% intervals")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    names = [e.strip() for e in args.encoders.split(",") if e.strip()]
    if not names or len(set(names)) < len(names):
        print(f"error: --encoders needs distinct zoo names, got {args.encoders!r}", file=sys.stderr)
        return 2
    folder = Path(args.suite_dir) if args.suite_dir else default_suite_dir(small=args.small)
    try:
        tasks = suite_tasks(SUITE, ensure_suite(folder, args.small, args.rebuild, args.partial))
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = Path(args.results)
    opts = RunOptions(output_dir=str(results / "runs"), bootstrap_rounds=args.bootstrap, show_progress=False)
    frames = []
    for name in names:
        t0 = time.perf_counter()
        frames.append(evaluate(name, tasks, opts).assign(encoder=name))
        print(f"[demo] {name}: {len(tasks)} tasks in {time.perf_counter() - t0:.0f} s", flush=True)
    long = merge(frames)
    paths = write_leaderboard(long, results / "leaderboard.csv")
    size = "small" if args.small else "full"
    charts = write_overview(long, results / "leaderboard", f"xbench offline suite ({size}), held-out test splits")
    print(paths["markdown"].read_text(encoding="utf-8"), end="")
    written = ", ".join(str(p) for p in [*paths.values(), *charts])
    print(f"[demo] wrote {written} ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
