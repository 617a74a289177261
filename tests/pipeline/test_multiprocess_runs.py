"""One run as several processes gives the results of one process, byte for byte: `--stage embed` then
`--stage score`; two `torchrun` ranks (gloo on the CPU) that split the embedding by claims and whose
rank 0 scores; two embed jobs and a score job through submitit's local executor (`--launcher local`).
Killing a rank mid-run and rerunning completes with the same results.

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
from typing import Any

import numpy as np
import pytest

from xbench.pipeline.launch import Ranks, rank_device

from conftest import FIXTURES, clip_task, require_oracle, tone_items

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


def _xbench(root: Path, name: str, *extra: str, parties: int = 1) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "xbench", *_argv(root, name, *extra)]
    return subprocess.run(argv, env=_env(root, name, parties), capture_output=True, text=True, timeout=300)


def _torchrun(root: Path, name: str, *extra: str, popen: bool = False) -> Any:
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
    assert _table(single.stdout) in proc.stdout
    assert proc.stdout.count("Weighted average MLP (all") == 1  # rank 0 alone printed
    assert_identical(shared, "single", "torchrun")


def test_two_submitit_local_jobs_and_a_score_job_equal_one_process(shared, single):
    require_oracle("submitit")
    proc = _xbench(shared, "submitit", "--launcher", "local", "--jobs", "2", parties=2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "embed jobs " in proc.stdout and "score job " in proc.stdout
    rows = _embedded(shared, "submitit")
    clips = Counter(sha for _, sha in rows)
    assert len(clips) == 24 and set(clips.values()) == {1}  # every clip embedded once
    assert len({pid for pid, _ in rows}) == 2  # by both embed jobs
    assert _table(single.stdout) in proc.stdout
    assert_identical(shared, "single", "submitit")
    assert list((shared / "submitit" / "out" / "slurm").glob("*/*_log.out"))  # submitit's logs, by job


def test_the_launcher_refuses_a_single_stage(shared):
    proc = _xbench(shared, "refused", "--launcher", "local", "--stage", "embed")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --launcher submits both stages")


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


def test_slurm_submission_is_an_embed_array_and_a_dependent_score_job(shared, tmp_path, monkeypatch):
    """The SLURM path as far as it runs without a cluster: the batch scripts submitit hands a fake ``sbatch``."""
    require_oracle("submitit")
    from xbench.pipeline.launch import ClusterOptions, submit
    from xbench.pipeline.run import RunOptions
    from xbench.taskspec.registry import get_task

    bin_dir, log = tmp_path / "bin", tmp_path / "sbatch.log"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        f"#!/bin/sh\nn=$(ls {tmp_path}/job-* 2>/dev/null | wc -l)\ntouch {tmp_path}/job-$n\n"
        f'cat "$@" >> {log}\necho "=== end" >> {log}\necho "Submitted batch job $((4242 + n))"\n'
    )
    (bin_dir / "srun").write_text("#!/bin/sh\n")  # submitit looks for it to detect a cluster
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    task = get_task("multi", shared / "tasks")
    cluster = ClusterOptions(jobs=3, folder=str(tmp_path / "logs"), partition="gpu", gpus_per_job=2, cpus_per_job=16)
    submission = submit(ENCODER, [task], RunOptions(output_dir=str(tmp_path / "out")), cluster)
    assert [job.job_id for job in submission.embed] == ["4242_0", "4242_1", "4242_2"]
    assert submission.score.job_id == "4243"
    embed, score, _ = log.read_text().split("=== end\n")
    for option in ("--array=0-2", "--partition=gpu", "--gpus-per-node=2", "--ntasks-per-node=2", "--cpus-per-task=8"):
        assert option in embed, option
    assert "--dependency=afterany:4242" in score and "--ntasks-per-node=1" in score and "--gpus-per-node=1" in score
    assert "--signal=USR2" in embed  # preemption and time-out: submitit's requeue through StageJob.checkpoint


@pytest.mark.parametrize(
    "env, visible",
    [
        ({"SLURM_NTASKS_PER_NODE": "2", "SLURM_LOCALID": "1", "CUDA_VISIBLE_DEVICES": "4,6"}, "6"),
        ({"SLURM_NTASKS_PER_NODE": "1", "SLURM_LOCALID": "0", "CUDA_VISIBLE_DEVICES": "4,6"}, "4,6"),
        ({"CUDA_VISIBLE_DEVICES": "4,6"}, "4,6"),  # not in a SLURM step
    ],
)
def test_each_task_of_a_gpu_job_sees_only_its_gpu(monkeypatch, env, visible):
    from xbench.pipeline.launch import _one_gpu_per_task

    for name in ("SLURM_NTASKS_PER_NODE", "SLURM_LOCALID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _one_gpu_per_task()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == visible
