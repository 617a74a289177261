"""README command 1's engine: build the offline suite, score a few encoders on it, write a leaderboard.

``python -m xbench.suites.demo`` (called by ``scripts/demo.sh``) builds the suite if needed, runs each encoder
through :func:`xbench.pipeline.run.evaluate` on both tracks, prints one table, and writes (``<results>`` defaults
to ``results/runs/offline``) ``<results>/leaderboard.csv`` (one row per encoder x task x track, then the
weighted averages) and ``<results>/leaderboard.png`` (scores per task, one panel per track).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from xbench.pipeline.run import RunOptions, averages, evaluate
from xbench.suites.offline import SUITE, SuiteError, build_suite, default_suite_dir, suite_tasks
from xbench.suites.offline.builder import default_jobs, read_manifest
from xbench.suites.offline.plot import bar_chart

DEFAULT_ENCODERS = ("logmel", "resemblyzer", "openwakeword")
COLUMNS = ("encoder", "task", "track", "metric", "raw", "score", "ci_low", "ci_high", "weight", "test_count")


def ensure_suite(folder: Path, small: bool, rebuild: bool, partial: bool) -> Path:
    """The suite's tasks folder under ``folder``, building it first when absent (or ``rebuild``)."""
    tasks_dir = folder / "tasks"
    manifest = read_manifest(tasks_dir)
    wanted = "small" if small else "full"
    if rebuild or manifest is None or manifest.get("size") != wanted:
        build_suite(folder, small=small, partial=partial, jobs=default_jobs())
    return tasks_dir


def leaderboard(frames: dict[str, Any]) -> Any:
    """One table: per-task rows of every encoder and track, then each encoder's weighted averages."""
    import pandas as pd

    rows = []
    for name, frame in frames.items():
        for r in frame.itertuples():
            rows.append({"encoder": name, "task": r.task, "track": r.track, "metric": r.metric, "raw": r.raw,
                         "score": r.score, "ci_low": r.ci_low, "ci_high": r.ci_high, "weight": r.weight,
                         "test_count": r.test_count})  # fmt: skip
        for avg in averages(frame):
            if avg["group"] != "all":
                continue
            rows.append({"encoder": name, "task": "weighted_average", "track": avg["track"], "metric": "score",
                         "raw": avg["score"], "score": avg["score"], "ci_low": np.nan, "ci_high": np.nan,
                         "weight": float(frame[frame.track == avg["track"]].weight.sum()),
                         "test_count": np.nan})  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


def table_text(board: Any) -> str:
    """Scores as text: rows = task, columns = encoder/track."""
    wide = board.pivot_table(index="task", columns=["encoder", "track"], values="score", aggfunc="first", sort=False)
    return wide.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-")


def plot(board: Any, path: Path, title: str) -> None:
    """Grouped bars per task (and the weighted average), one panel per track."""
    encoders = list(dict.fromkeys(board.encoder))
    tasks = list(dict.fromkeys(t for t in board.task if t != "weighted_average")) + ["weighted_average"]
    labels = [t.removeprefix("offline_").replace("weighted_average", "average").replace("instrument_", "instr ")
              for t in tasks]  # fmt: skip
    panels = []
    for track in ("mlp", "knn"):
        values = np.full((len(encoders), len(tasks)), np.nan)
        for r in board[board.track == track].itertuples():
            values[encoders.index(r.encoder), tasks.index(r.task)] = r.score
        panels.append((f"{track.upper()} track: test score (0-1)", values))
    bar_chart(path, title, labels, encoders, panels)


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
    folder = Path(args.suite_dir) if args.suite_dir else default_suite_dir(small=args.small)
    try:
        tasks = suite_tasks(SUITE, ensure_suite(folder, args.small, args.rebuild, args.partial))
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = Path(args.results)
    opts = RunOptions(output_dir=str(results / "runs"), bootstrap_rounds=args.bootstrap, show_progress=False)
    frames = {}
    for name in [e.strip() for e in args.encoders.split(",") if e.strip()]:
        t0 = time.perf_counter()
        frames[name] = evaluate(name, tasks, opts)
        print(f"[demo] {name}: {len(tasks)} tasks in {time.perf_counter() - t0:.0f} s", flush=True)
    board = leaderboard(frames)
    results.mkdir(parents=True, exist_ok=True)
    board.to_csv(results / "leaderboard.csv", index=False, float_format="%.4f")
    size = "small" if args.small else "full"
    plot(board, results / "leaderboard.png", f"xbench offline suite ({size}), held-out test splits")
    print(table_text(board))
    print(f"[demo] wrote {results / 'leaderboard.csv'} and {results / 'leaderboard.png'} "
          f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
