"""Pretrain the tiny recipes on the offline suite's training audio and benchmark them against their random init.

For each recipe: ``xbench pretrain RECIPE`` on the train shards of every pool of the offline suite
(one source per pool, equal weights), ``xbench check`` of the trained encoder, then ``xbench run
--suite offline`` of the trained encoder (``OUT/encoder.py``) and of the same architecture with the
weights it started from (``OUT/encoder_init.py``). Writes, under ``--results``:

* ``results.csv``: per recipe and weights (pretrained / untrained) the weighted kNN and MLP averages
  over all offline tasks, the encoder's parameters, the training steps and CPU / wall seconds, and the
  check verdict (rows of other recipes already there are kept);
* ``tasks.csv``: the per-task scores behind them;
* ``<recipe>/<stage>.log.csv`` and ``<recipe>/<stage>.loss.png``: each stage's training log and curve.

Run one recipe at a time on a shared machine, e.g.
``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pretrain_recipes.py dasheng-tiny --work /tmp/pretrain``.
An existing finished run in ``--work`` is reused (``--resume``), an interrupted one continued.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

XBENCH = [sys.executable, "-m", "xbench"]
RESULT_COLUMNS = [
    "recipe",
    "weights",
    "knn_average",
    "mlp_average",
    "knn_tasks",
    "mlp_tasks",
    "encoder_parameters",
    "output_dim",
    "steps",
    "train_cpu_seconds",
    "train_wall_seconds",
    "check",
]


def offline_sources() -> tuple[Path, list[str]]:
    """The offline suite's tasks folder and one ``POOL=<train shards>`` value per pool."""
    found = subprocess.run([*XBENCH, "suite", "path", "offline"], check=True, capture_output=True, text=True)
    tasks = Path(found.stdout.strip().splitlines()[-1])
    sources: dict[str, str] = {}
    for path in sorted(tasks.glob("*.json")):
        task = json.loads(path.read_text())
        if "train_split" not in task or task.get("train_split") is None:
            continue
        data = (tasks / task["data_dir"]).resolve()
        pattern = task["audio_tar_name_of_split"].get(task["train_split"], f"{task['train_split']}*.tar")
        sources.setdefault(data.name, f"{data.name}={data / pattern}")
    return tasks, list(sources.values())


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pretrain(recipe: str, data: list[str], out: Path) -> tuple[float, float]:
    """Run, finish or reuse ``xbench pretrain``: the training's ``(CPU seconds, wall seconds)``.

    The seconds are summed over the calls that trained and kept in ``OUT/bench_time.json``, so a
    finished run that is only re-benchmarked keeps the times of its training.
    """
    record = out / "bench_time.json"
    spent = json.loads(record.read_text()) if record.exists() else {"cpu": 0.0, "wall": 0.0}
    finished = (out / "encoder.py").exists()
    command = [*XBENCH, "pretrain", recipe, "--data", *data, "--out", str(out)]
    if (out / "latest.json").exists() or any(out.glob("*/latest.json")):
        command.append("--resume")
    cpu, wall = _children_cpu(), time.perf_counter()
    subprocess.run(command, check=True)
    if not finished:
        spent = {"cpu": spent["cpu"] + _children_cpu() - cpu, "wall": spent["wall"] + time.perf_counter() - wall}
        record.write_text(json.dumps(spent))
    return spent["cpu"], spent["wall"]


def benchmark(encoder: Path, tasks: Path, output: Path, cache: Path) -> pd.DataFrame:
    """``xbench run --suite offline`` of ``encoder``; its per-task summary."""
    command = [*XBENCH, "run", "--encoder", str(encoder), "--tasks-dir", str(tasks), "--suite", "offline"]
    command += ["--output", str(output), "--cache-dir", str(cache)]
    subprocess.run(command, check=True)
    (summary,) = output.glob("*/xbench/summary.csv")
    return pd.read_csv(summary)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+")
    parser.add_argument("--work", type=Path, required=True, help="runs, benchmark outputs and caches")
    parser.add_argument("--results", type=Path, default=Path("results/pretrain"))
    args = parser.parse_args()

    import torch

    from xbench.core.atomic_io import atomic_write_bytes
    from xbench.encoder.contract import load_encoder
    from xbench.scoring.table import averages

    tasks, data = offline_sources()
    args.results.mkdir(parents=True, exist_ok=True)
    rows, task_rows = [], []
    for recipe in args.recipes:
        out = args.work / recipe
        cpu, wall = pretrain(recipe, data, out)
        check = subprocess.run([*XBENCH, "check", "--encoder", str(out / "encoder.py")], capture_output=True, text=True)
        print(check.stdout.strip().splitlines()[-1])
        for log in sorted(out.glob("**/log.csv")):
            stage = log.parent.name if log.parent != out else "train"
            (args.results / recipe).mkdir(exist_ok=True)
            shutil.copyfile(log, args.results / recipe / f"{stage}.log.csv")
            shutil.copyfile(log.with_name("loss.png"), args.results / recipe / f"{stage}.loss.png")
        steps = sum(len(pd.read_csv(log)) for log in out.glob("**/log.csv"))
        for weights, file in (("pretrained", "encoder.py"), ("untrained", "encoder_init.py")):
            frame = benchmark(out / file, tasks, args.work / "runs" / f"{recipe}-{weights}", args.work / "cache")
            avg = averages(frame).query("group == 'all'").set_index("track")
            with torch.no_grad():
                encoder = load_encoder(out / file)
            rows.append(
                {
                    "recipe": recipe,
                    "weights": weights,
                    "knn_average": round(float(avg.loc["knn", "score"]), 4),
                    "mlp_average": round(float(avg.loc["mlp", "score"]), 4),
                    "knn_tasks": int(avg.loc["knn", "tasks"]),
                    "mlp_tasks": int(avg.loc["mlp", "tasks"]),
                    "encoder_parameters": sum(p.numel() for p in encoder.parameters()),
                    "output_dim": int(encoder.output_dim),
                    "steps": steps if weights == "pretrained" else 0,
                    "train_cpu_seconds": round(cpu) if weights == "pretrained" else 0,
                    "train_wall_seconds": round(wall) if weights == "pretrained" else 0,
                    "check": ("pass" if check.returncode == 0 else "fail") if weights == "pretrained" else "",
                }
            )
            for row in frame.itertuples():
                task_rows.append(
                    {
                        "recipe": recipe,
                        "weights": weights,
                        "task": row.task,
                        "track": row.track,
                        "metric": row.metric,
                        "score": round(float(row.score), 4),
                    }
                )
    for name, new, columns in (("results.csv", rows, RESULT_COLUMNS), ("tasks.csv", task_rows, None)):
        path = args.results / name
        frame = pd.DataFrame(new, columns=columns)
        if path.exists():
            old = pd.read_csv(path)
            frame = pd.concat([old[~old.recipe.isin(args.recipes)], frame], ignore_index=True)
        atomic_write_bytes(path, frame.to_csv(index=False).encode())
    print(pd.read_csv(args.results / "results.csv").to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
