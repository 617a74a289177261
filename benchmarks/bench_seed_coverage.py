"""Do the default protocol's MLP intervals cover the scores single probe seeds give? (the offline suite, logmel)

Per task of the built offline suite (``xbench suite build offline``), with the ``logmel`` encoder:

* the default estimate: the mean over 5 probe seeds (``task.seed`` … ``task.seed + 4``, trained together)
  and its 95 % interval (test items and seeds resampled together);
* 20 single-seed scores, each from one probe trained alone (``RunOptions(probe_seeds=(s,))``) with seeds
  ``task.seed + 5`` … ``task.seed + 24``, none of them among the default's five;
* for contrast, the single-probe interval of seed ``task.seed`` alone (test items resampled only, the
  interval before probe seeds were averaged) and whether it contains the 20 seeds' median.

Coverage is the fraction of the 20 single-seed scores inside the default interval. Writes
``results/seed_coverage.csv`` and ``results/seed_coverage.png``:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_seed_coverage.py [--tasks-dir DIR] [--single-seeds 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xbench.core.atomic_io import atomic_write_bytes
from xbench.pipeline.run import RunOptions, evaluate
from xbench.scoring.scores import spread
from xbench.suites.offline import suite_tasks

ENCODER = "logmel"
DEFAULT_SEEDS = 5


def _mlp_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame.track == "mlp"].set_index("task")


def measure(
    tasks: list, single_seeds: int, rounds: int, work: Path, cache: str | None
) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """One row per task (the default estimate, the single-seed scores' spread, the coverage) and the scores."""
    base = {"tracks": ("mlp",), "cache_root": cache, "show_progress": False}

    def run(name: str, **kw: object) -> pd.DataFrame:
        return _mlp_rows(evaluate(ENCODER, tasks, RunOptions(output_dir=str(work / name), **base, **kw)))

    start = time.perf_counter()
    default = run("default", probe_seeds=DEFAULT_SEEDS, bootstrap_rounds=rounds)
    print(f"default ({DEFAULT_SEEDS} seeds, embeddings included): {time.perf_counter() - start:.0f} s", flush=True)
    single = run("single", probe_seeds=1, bootstrap_rounds=rounds)  # seed task.seed alone, items resampled
    scores: dict[str, list[float]] = {t.name: [] for t in tasks}
    for i in range(single_seeds):
        offset = DEFAULT_SEEDS + i
        for task in tasks:  # one probe per seed, trained alone; only its score is needed
            opts = RunOptions(
                output_dir=str(work / f"seed{offset}"), probe_seeds=(task.seed + offset,), bootstrap_rounds=1, **base
            )
            frame = _mlp_rows(evaluate(ENCODER, [task], opts))
            scores[task.name].append(float(frame.score.iloc[0]))
        print(f"single seed {i + 1}/{single_seeds}: {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for task in tasks:
        d, s, values = default.loc[task.name], single.loc[task.name], np.asarray(scores[task.name])
        inside = (values >= d.ci_low) & (values <= d.ci_high)
        median = float(np.median(values))
        rows.append(
            {
                "task": task.name,
                "metric": d.metric,
                "test_items": int(d.test_count),
                "score": float(d.score),
                "ci_low": float(d.ci_low),
                "ci_high": float(d.ci_high),
                "default_seed_std": float(d.seed_std),
                "single_seeds": len(values),
                "single_mean": float(values.mean()),
                "single_median": median,
                **{f"single_{k}": v for k, v in spread(values).items()},
                "coverage": float(inside.mean()),
                "one_seed_score": float(s.score),
                "one_seed_ci_low": float(s.ci_low),
                "one_seed_ci_high": float(s.ci_high),
                "one_seed_coverage": float(((values >= s.ci_low) & (values <= s.ci_high)).mean()),
                "one_seed_covers_median": bool(s.ci_low <= median <= s.ci_high),
            }
        )
    return pd.DataFrame(rows), scores


def plot(table: pd.DataFrame, scores: dict[str, list[float]], path: Path) -> None:
    """Per task: the single-seed scores (dots), the default interval (thick) and the one-seed interval (thin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.7 * len(table) + 1.6))
    for y, row in enumerate(table.itertuples()):
        ax.plot([row.ci_low, row.ci_high], [y, y], lw=6, color="tab:blue", alpha=0.35, solid_capstyle="butt")
        ax.plot([row.score], [y], "|", ms=14, color="tab:blue")
        ax.plot([row.one_seed_ci_low, row.one_seed_ci_high], [y - 0.25] * 2, lw=1.5, color="tab:orange")
        jitter = np.linspace(-0.12, 0.12, len(scores[row.task]))
        ax.scatter(scores[row.task], y + jitter, s=9, color="black", zorder=3)
        where = {"xycoords": ("axes fraction", "data"), "xytext": (4, -3), "textcoords": "offset points"}
        ax.annotate(f"{row.coverage:.0%}", (1.0, y), fontsize=8, **where)
    ax.set_yticks(range(len(table)), table.task)
    ax.invert_yaxis()
    ax.set_xlabel("normalised score (0–1)")
    ax.set_title(
        f"{ENCODER}: default {DEFAULT_SEEDS}-seed 95% interval (blue), one-seed interval (orange), "
        f"{int(table.single_seeds.iloc[0])} single-seed scores (dots); right: coverage",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks-dir", default=None, help="the offline suite's tasks folder (default: the built one)")
    parser.add_argument("--tasks", nargs="*", default=None, help="only these tasks of the suite")
    parser.add_argument("--single-seeds", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: $XBENCH_CACHE), kept for reruns")
    parser.add_argument("--out", default="results/seed_coverage", help="CSV and PNG path without extension")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tasks = [t for t in suite_tasks("offline", args.tasks_dir) if not args.tasks or t.name in args.tasks]
    with tempfile.TemporaryDirectory() as tmp:
        table, scores = measure(tasks, args.single_seeds, args.bootstrap, Path(tmp), args.cache_dir)
    out = Path(args.out)
    atomic_write_bytes(out.with_suffix(".csv"), table.to_csv(index=False, float_format="%.4f").encode())
    plot(table, scores, out.with_suffix(".png"))
    show = ["task", "score", "ci_low", "ci_high", "single_std", "single_min", "single_max", "coverage"]
    show += ["one_seed_coverage", "one_seed_covers_median"]
    print(table[show].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        f"coverage, mean over tasks: {table.coverage.mean():.3f} (minimum {table.coverage.min():.2f}); "
        f"one-seed intervals: {table.one_seed_coverage.mean():.3f}"
    )
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
