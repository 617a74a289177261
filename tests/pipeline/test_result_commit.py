"""A result JSON and its predictions are committed together: one marker, written last, carries both files'
sha256. A run killed anywhere in between leaves a result that a rerun computes again (before, a rerun kept
the result without predictions forever); temporary files of killed writers are cleaned, a live writer's never.

Two `xbench run` processes started together on one cache and one output folder split the embedding (no
clip embedded twice, both embed a share), both exit 0 with identical results, and the result they share
is committed once with its predictions (before, they raced on fixed temporary names and both embedded all).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter

import pytest

import xbench.core.atomic_io as atomic_io
import xbench.report.compare as compare
from xbench.core.atomic_io import this_host
from xbench.encoders.baselines import LogMelEncoder
from xbench.pipeline.run import RunOptions, TaskRunner, commit_path, evaluate, result_committed
from xbench.report.compare import Predictions, predictions_path

from conftest import FIXTURES, clip_task, tone_items

FREQS = {"a": 300.0, "b": 2000.0}


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (not even ``except Exception`` handlers)."""


def _toy(folder, name, clips=(12, 4, 6), per_shard=6):
    """A two-class tone task ``name``: train/valid/test with ``clips`` clips, ``per_shard`` per shard and batch."""
    splits = {
        f"c_{split}": tone_items(seed, ["a", "b"] * (n // 2), FREQS, split[:2])
        for seed, (split, n) in enumerate(zip(("train", "valid", "test"), clips, strict=True))
    }
    fields = {"eval_weight": clips[2], "epochs": 2, "batch_size_encode": per_shard}
    return clip_task(folder / "data", name, splits, ("a", "b"), per_shard, **fields)


@pytest.fixture
def task(tmp_path):
    return _toy(tmp_path, "commit_toy")


def _opts(root, out="out"):
    return RunOptions(
        cache_root=str(root / "cache"), output_dir=str(root / out), bootstrap_rounds=20, show_progress=False
    )


def _result(root, out="out"):
    (path,) = (root / out).rglob("*@v1.json")
    return path


def _sha256(path):
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _count_scoring(monkeypatch):
    calls = []
    real = TaskRunner.score
    monkeypatch.setattr(TaskRunner, "score", lambda self, *a, **k: calls.append(self.task.name) or real(self, *a, **k))
    return calls


def test_the_marker_carries_both_files_and_a_committed_result_is_reused(task, tmp_path, monkeypatch):
    frame = evaluate(LogMelEncoder(), [task], _opts(tmp_path))
    path = _result(tmp_path)
    marker = json.loads(commit_path(path).read_text())
    assert marker["files"] == {p.name: _sha256(p) for p in (path, predictions_path(path))}
    assert result_committed(path)
    calls = _count_scoring(monkeypatch)
    again = evaluate(LogMelEncoder(), [task], _opts(tmp_path))
    assert calls == [] and frame[["raw", "score"]].equals(again[["raw", "score"]])


def _kill_writing_predictions(monkeypatch):
    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(compare, "write_predictions", killed)


def _kill_before_the_marker(monkeypatch):
    real = atomic_io.atomic_write_json

    def write(path, obj, indent=2):
        if str(path).endswith(".commit.json"):
            raise Killed
        real(path, obj, indent)

    monkeypatch.setattr(atomic_io, "atomic_write_json", write)


@pytest.mark.parametrize("where", ["writing the predictions", "after both renames, before the marker"])
def test_a_run_killed_while_committing_is_repaired_by_the_rerun(task, tmp_path, monkeypatch, where):
    clean = evaluate(LogMelEncoder(), [task], _opts(tmp_path, "clean"))
    with monkeypatch.context() as patch:
        (_kill_writing_predictions if where.startswith("writing") else _kill_before_the_marker)(patch)
        with pytest.raises(Killed):
            evaluate(LogMelEncoder(), [task], _opts(tmp_path))
    folder = tmp_path / "out"
    results = list(folder.rglob("commit_toy@v1.json"))
    if where.startswith("after"):  # both files are in place, but nothing vouches for them together
        assert len(results) == 1 and predictions_path(results[0]).is_file()
    assert not list(folder.rglob("*.commit.json")) and not any(result_committed(p) for p in results)

    calls = _count_scoring(monkeypatch)
    repaired = evaluate(LogMelEncoder(), [task], _opts(tmp_path))
    assert calls == ["commit_toy"]
    path = _result(tmp_path)
    assert result_committed(path)
    assert Predictions.read(predictions_path(path)).tracks == ["knn", "mlp"]
    assert clean[["raw", "score", "ci_low", "ci_high"]].equals(repaired[["raw", "score", "ci_low", "ci_high"]])
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_a_result_whose_predictions_went_missing_or_changed_is_computed_again(task, tmp_path, monkeypatch):
    evaluate(LogMelEncoder(), [task], _opts(tmp_path))
    path = _result(tmp_path)
    calls = _count_scoring(monkeypatch)
    predictions_path(path).unlink()  # what a run killed between the two writes left before there was a marker
    evaluate(LogMelEncoder(), [task], _opts(tmp_path))
    assert calls == ["commit_toy"] and result_committed(path) and predictions_path(path).is_file()
    with predictions_path(path).open("r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 0xFF]))
    assert not result_committed(path)
    evaluate(LogMelEncoder(), [task], _opts(tmp_path))
    assert calls == ["commit_toy"] * 2 and result_committed(path)


def test_orphan_temporary_files_are_cleaned_but_a_live_writers_are_kept(task, tmp_path):
    evaluate(LogMelEncoder(), [task], _opts(tmp_path))
    folder = _result(tmp_path).parent
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    old = time.time() - 2 * atomic_io.ORPHAN_AGE_S
    files = {
        "dead writer here": f".commit_toy@v1.json~{this_host()}~{proc.pid}~00000001.tmp",
        "live writer here": f".commit_toy@v1.json~{this_host()}~{os.getppid()}~00000002.tmp",
        "other host, long untouched": ".commit_toy@v1.json~elsewhere~12~00000003.tmp",
        "other host, recent": ".commit_toy@v1.json~elsewhere~12~00000004.tmp",
        "older xbench, long untouched": "commit_toy@v1.predictions.npz.tmp.npz",
    }
    for what, name in files.items():
        (folder / name).write_bytes(b"partial")
        if "long untouched" in what:
            os.utime(folder / name, (old, old))
    (folder / "summary.json").unlink()  # the rerun only rewrites the summary: results are reused
    evaluate(LogMelEncoder(), [task], _opts(tmp_path))
    left = {what for what, name in files.items() if (folder / name).exists()}
    assert left == {"live writer here", "other host, recent"}


def test_two_runs_on_one_cache_embed_each_clip_once_and_agree(tmp_path):
    task = _toy(tmp_path, "shared", clips=(18, 6, 6), per_shard=3)  # 10 units
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "shared.json").write_text(json.dumps(task.to_dict()))
    barrier, log = tmp_path / "barrier", tmp_path / "embedded.log"
    barrier.mkdir()
    env = {**os.environ, "XBENCH_TEST_EMBED_LOG": str(log), "XBENCH_TEST_BARRIER": str(barrier)}
    argv = [
        sys.executable, "-m", "xbench", "run", "--encoder", f"{FIXTURES / 'recording_encoder.py'}:RecordingSlowEncoder",
        "--tasks", "shared", "--tasks-dir", str(tasks_dir), "--output", str(tmp_path / "out"),
        "--cache-dir", str(tmp_path / "cache"), "--bootstrap", "20",
    ]  # fmt: skip
    runs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]

    rows = [line.split() for line in log.read_text().splitlines()]
    clips = Counter(sha for _, sha in rows)
    assert len(clips) == 30 and set(clips.values()) == {1}  # every clip embedded, none twice
    assert sorted(Counter(pid for pid, _ in rows).values())[0] >= 3  # each run embedded at least one unit
    assert outputs[0][0] == outputs[1][0]  # the same table, printed by both

    path = _result(tmp_path, "out")
    assert path.name == "shared@v1.json" and result_committed(path)
    assert len(list((tmp_path / "cache").rglob("*.npz.done.json"))) == 10
    assert [p.name for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".claim", ".takeover"))] == []
