"""Progress: the embed bar counts the task's clips (its total known from the label check, so it has an ETA),
the score bar the tasks; bars stay quiet when stderr is not a terminal, and the log gets one line per task
for each stage instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import xbench.pipeline.run as run
from xbench.encoders.baselines import LogMelEncoder
from xbench.pipeline.run import RunOptions, evaluate

from conftest import clip_task, tone_items


def _task(root, name="progress"):
    splits = {f"g_{s}": tone_items(n, ["a", "b"] * 3, {"a": 300.0, "b": 2000.0}, s[:2]) for n, s in enumerate("tvs")}
    return clip_task(root / "data", name, splits, ("a", "b"), 4, eval_weight=6, epochs=1)


def test_bars_have_totals(tmp_path, monkeypatch):
    bars = []
    real = run._bar

    def spy(total, desc, show, unit="clip"):
        bar = real(total, desc, show, unit)
        bars.append((desc, total, unit, bar))
        return bar

    monkeypatch.setattr(run, "_bar", spy)
    opts = RunOptions(cache_root=str(tmp_path / "c"), output_dir=str(tmp_path / "o"), bootstrap_rounds=10, workers=0)
    evaluate(LogMelEncoder(), [_task(tmp_path)], opts)
    (embed, clips, unit, bar), (score, tasks, task_unit, _) = bars
    assert (embed, clips, unit) == ("embed progress", 18, "clip")  # 6 clips in each of 3 splits
    assert (score, tasks, task_unit) == ("score", 1, "task")
    assert bar.disable  # show_progress, but stderr is not a terminal here: quiet


def test_logs_get_one_line_per_task_and_stage_and_no_bar(tmp_path):
    task = _task(tmp_path)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "progress.json").write_text(json.dumps(task.to_dict()))
    argv = [
        sys.executable, "-m", "xbench", "-v", "run", "--encoder", "logmel", "--tasks", "progress",
        "--tasks-dir", str(tmp_path / "tasks"), "--output", str(tmp_path / "out"),
        "--cache-dir", str(tmp_path / "cache"), "--bootstrap", "10", "--workers", "0",
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    line_of_embed = "task progress: embedded 6 of 6 unit(s) here (18 clips, 9 s of audio)"
    embedded = [line for line in lines if line_of_embed in line]
    scored = [line for line in lines if "task progress: mlp " in line and ", knn " in line and "scored in" in line]
    assert len(embedded) == 1 and len(scored) == 1, proc.stderr
    assert "clip/s" not in proc.stderr and "it/s" not in proc.stderr  # no bar off a terminal
