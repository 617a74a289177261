"""One run as several processes gives the results of one process, byte for byte: `--stage embed` then
`--stage score`, and two `torchrun` ranks (gloo on the CPU) that split the embedding by claims and whose
rank 0 scores. Killing a rank mid-run and rerunning completes with the same results.

"Byte-identical" is checked on everything a result holds except where and when it was made: the result
JSON without its timings, date, host, cache folder and compute record, every predictions array, and every
cached unit's arrays.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from xbench.pipeline.launch import Ranks, rank_device

from conftest import FIXTURES, clip_task, tone_items

FREQS = {"a": 300.0, "b": 2000.0}
ENCODER = f"{FIXTURES / 'recording_encoder.py'}:RecordingSlowEncoder"
VOLATILE = ("timings", "created", "host", "cache", "compute")
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A two-class tone task of 8 units (3 clips per shard) declared in a tasks folder."""
    root = tmp_path_factory.mktemp("multi")
    splits = {
        f"m_{split}": tone_items(seed, ["a", "b"] * (n // 2), FREQS, split[:2])
        for seed, (split, n) in enumerate(zip(("train", "valid", "test"), (12, 6, 6), strict=True))
    }
    task = clip_task(root / "data", "multi", splits, ("a", "b"), 3, eval_weight=6, epochs=2, batch_size_encode=3)
    (root / "tasks").mkdir()
    (root / "tasks" / "multi.json").write_text(json.dumps(task.to_dict()))
    return root


def _argv(root: Path, name: str, *extra: str) -> list[str]:
    return [
        "run", "--encoder", ENCODER, "--tasks", "multi", "--tasks-dir", str(root / "tasks"),
        "--output", str(root / name / "out"), "--cache-dir", str(root / name / "cache"), "--bootstrap", "20",
        "--workers", "0", *extra,
    ]  # fmt: skip


def _env(root: Path, name: str, parties: int = 1) -> dict[str, str]:
    barrier = root / name / "barrier"
    barrier.mkdir(parents=True, exist_ok=True)
    log = str(root / name / "embedded.log")
    return {
        **os.environ, "XBENCH_TEST_EMBED_LOG": log, "XBENCH_TEST_BARRIER": str(barrier),
        "XBENCH_TEST_PARTIES": str(parties), "OMP_NUM_THREADS": "1",
    }  # fmt: skip


def _xbench(root: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "xbench", *_argv(root, name, *extra)]
    return subprocess.run(argv, env=_env(root, name), capture_output=True, text=True, timeout=300)


def _torchrun(root: Path, name: str, *extra: str, popen: bool = False) -> subprocess.CompletedProcess | subprocess.Popen:
    argv = [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "xbench", *_argv(root, name, *extra)]
    if popen:
        return subprocess.Popen(argv, env=_env(root, name, 2), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return subprocess.run(argv, env=_env(root, name, 2), capture_output=True, text=True, timeout=300)


def _result(root: Path, name: str) -> tuple[dict, dict[str, np.ndarray]]:
    (path,) = (root / name / "out").rglob("multi@v1.json")
    record = json.loads(path.read_text())
    for key in VOLATILE:
        record.pop(key)
    with np.load(path.with_name("multi@v1.predictions.npz")) as z:
        predictions = {k: z[k] for k in z.files}
    return record, predictions


def _units(root: Path, name: str) -> dict[str, dict[str, np.ndarray]]:
    units = {}
    for path in sorted((root / name / "cache").rglob("*.npz")):
        with np.load(path) as z:
            units[str(path.relative_to(root / name / "cache"))] = {k: z[k] for k in z.files}
    return units


def assert_identical(root: Path, a: str, b: str) -> None:
    """Runs ``a`` and ``b`` gave byte-identical results, predictions and cached units."""
    (rec_a, pred_a), (rec_b, pred_b) = _result(root, a), _result(root, b)
    assert json.dumps(rec_a, sort_keys=True) == json.dumps(rec_b, sort_keys=True)
    assert pred_a.keys() == pred_b.keys()
    for key in pred_a:
        assert pred_a[key].dtype == pred_b[key].dtype and pred_a[key].tobytes() == pred_b[key].tobytes(), key
    units_a, units_b = _units(root, a), _units(root, b)
    assert units_a.keys() == units_b.keys() and len(units_a) == 8
    for path in units_a:
        for key in units_a[path]:
            assert units_a[path][key].tobytes() == units_b[path][key].tobytes(), (path, key)


def _table(stdout: str) -> str:
    """The printed results table (without the closing ``results: <folder>`` line)."""
    return stdout[: stdout.index("results: ")]


def _embedded(root: Path, name: str) -> list[list[str]]:
    return [line.split() for line in (root / name / "embedded.log").read_text().splitlines()]


@pytest.fixture(scope="module")
def single(shared):
    """The reference: one process, both stages."""
    proc = _xbench(shared, "single")
    assert proc.returncode == 0, proc.stderr
    return proc


def test_embed_stage_then_score_stage_equals_one_run(shared, single):
    embed = _xbench(shared, "staged", "--stage", "embed")
    assert embed.returncode == 0, embed.stderr
    assert "score with --stage score" in embed.stdout
    assert not list((shared / "staged" / "out").rglob("multi@v1.json"))  # nothing scored
    assert len(list((shared / "staged" / "cache").rglob("*.npz.done.json"))) == 8
    before = len(_embedded(shared, "staged"))

    score = _xbench(shared, "staged", "--stage", "score")
    assert score.returncode == 0, score.stderr
    assert len(_embedded(shared, "staged")) == before  # the score stage never ran the encoder
    assert _table(score.stdout) == _table(single.stdout)
    assert_identical(shared, "single", "staged")


def test_score_stage_refuses_missing_units(shared):
    proc = _xbench(shared, "nothing", "--stage", "score")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: task multi: 8 of 8 embed units are not in the cache")
    assert "--stage embed" in proc.stderr and not list((shared / "nothing" / "out").rglob("multi@v1.json"))


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_two_torchrun_ranks_split_the_work_and_equal_one_process(shared, single):
    proc = _torchrun(shared, "torchrun")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _embedded(shared, "torchrun")
    clips = Counter(sha for _, sha in rows)
    assert len(clips) == 24 and set(clips.values()) == {1}  # every clip embedded once
    assert len({pid for pid, _ in rows}) == 2  # by both ranks
    assert _table(single.stdout) in proc.stdout and proc.stdout.count("Weighted average MLP (all") == 1  # rank 0 printed
    assert_identical(shared, "single", "torchrun")


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_a_rank_killed_mid_run_and_a_rerun_complete_with_the_same_results(shared, single):
    run = _torchrun(shared, "killed", popen=True)
    cache, barrier = shared / "killed" / "cache", shared / "killed" / "barrier"
    deadline = time.time() + 120
    while time.time() < deadline and (len(os.listdir(barrier)) < 2 or len(list(cache.rglob("*.done.json"))) < 2):
        time.sleep(0.05)
    victim = int(sorted(os.listdir(barrier))[0])
    os.kill(victim, signal.SIGKILL)
    run.communicate(timeout=120)
    assert run.returncode != 0  # torchrun stops the other rank and fails
    assert 2 <= len(list(cache.rglob("*.done.json"))) < 8, "the rank should have been killed part-way"
    for name in os.listdir(barrier):
        os.unlink(barrier / name)

    rerun = _torchrun(shared, "killed")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_identical(shared, "single", "killed")
    clips = Counter(sha for _, sha in _embedded(shared, "killed"))
    assert len(clips) == 24 and max(clips.values()) <= 2  # only the killed rank's unfinished unit was redone


def test_torchrun_environment_and_rank_devices():
    assert Ranks.from_env({}) == Ranks(0, 1, 0, 1) and Ranks.from_env({}).leader
    ranks = Ranks.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (ranks.rank, ranks.local_rank, ranks.leader) == (3, 1, False)
    assert rank_device("cuda", ranks) == "cuda:1"  # each rank on its own GPU
    assert rank_device("cuda:0", ranks) == "cuda:0" and rank_device("cpu", ranks) == "cpu"
    assert rank_device("cuda", Ranks()) == "cuda"
    with pytest.raises(ValueError, match="inconsistent"):
        Ranks.from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        Ranks.from_env({"WORLD_SIZE": "two"})
