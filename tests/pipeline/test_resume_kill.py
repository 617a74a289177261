"""A run killed (SIGKILL) during embedding resumes: only missing units are recomputed, scores unchanged."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xbench.data.writer import write_audio_shards
from xbench.taskspec.config import LabelSpec, TaskConfig

from conftest import FIXTURES

SLOW = FIXTURES / "slow_encoder.py"
SR = 16000


def _items(seed, n, prefix):
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = ("a", "b")[i % 2]
        t = np.arange(int(0.5 * SR)) / SR
        x = 0.3 * np.sin(2 * np.pi * (400 if label == "a" else 1600) * t) + 0.05 * rng.standard_normal(t.size)
        yield f"{prefix}{i:03d}", (x.astype(np.float32), SR), {"label": label}


def _run(tasks_dir, out, cache):
    return [
        sys.executable,
        "-m",
        "xbench",
        "run",
        "--encoder",
        f"{SLOW}:SlowLogMelEncoder",
        "--tasks",
        "killme",
        "--tasks-dir",
        str(tasks_dir),
        "--output",
        str(out),
        "--cache-dir",
        str(cache),
        "--bootstrap",
        "20",
    ]


@pytest.mark.slow
def test_killed_run_recomputes_only_missing_units(tmp_path):
    data = tmp_path / "data"
    write_audio_shards(data, "k_train-%06d.tar", _items(0, 24, "tr"), maxcount=4)  # 6 train shards, 1 valid, 2 test
    write_audio_shards(data, "k_valid-%06d.tar", _items(1, 4, "va"), maxcount=4)
    write_audio_shards(data, "k_test-%06d.tar", _items(2, 8, "te"), maxcount=4)
    task = TaskConfig(
        name="killme",
        domain="sound",
        labels=LabelSpec("class", "label", classes=("a", "b")),
        output_dim=2,
        train_split="k_train",
        valid_split="k_valid",
        test_split="k_test",
        data_dir=str(data),
        eval_weight=8,
        batch_size_encode=4,
        epochs=3,
    )
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "killme.json").write_text(json.dumps(task.to_dict()))
    cache, out = tmp_path / "cache", tmp_path / "out"

    proc = subprocess.Popen(_run(tasks_dir, out, cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.rglob("*.done.json"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npz") if Path(f"{p}.done.json").exists()}
    assert 3 <= len(done_before) < 9, "the run should have been killed part-way through embedding"
    assert not list(out.rglob("killme@v1.json"))

    resumed = subprocess.run(_run(tasks_dir, out, cache), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    units = sorted(cache.rglob("*.npz"))
    assert len(units) == 9 and all(Path(f"{p}.done.json").exists() for p in units)
    for path, mtime in done_before.items():
        assert path.stat().st_mtime_ns == mtime, f"{path.name} was recomputed"
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]

    clean = subprocess.run(_run(tasks_dir, tmp_path / "out2", tmp_path / "cache2"), capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    (a,) = out.rglob("killme@v1.json")
    (b,) = (tmp_path / "out2").rglob("killme@v1.json")
    assert json.loads(a.read_text())["tracks"] == json.loads(b.read_text())["tracks"]
