"""`--protocol xares` reproduces pip xares 0.1.3's kNN scores on the same shards and encoder."""

import json
import subprocess
import sys

import numpy as np
import pytest

from xbench.data.writer import write_audio_shards
from xbench.encoders.baselines import LogMelEncoder
from xbench.pipeline.run import RunOptions, evaluate
from xbench.taskspec.config import LabelSpec, TaskConfig

from conftest import FIXTURES, require_oracle

SR = 16000
CLASSES = ["low", "mid", "high"]
ORACLE = FIXTURES / "xares_oracle_knn.py"


def _items(seed, n, prefix):
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = CLASSES[i % 3]
        t = np.arange(int(rng.uniform(0.3, 3.2) * SR)) / SR
        f = {"low": 300.0, "mid": 700.0, "high": 1500.0}[label] * rng.uniform(0.8, 1.25)
        x = 0.2 * np.sin(2 * np.pi * f * t) + 0.2 * rng.standard_normal(t.size)
        yield f"{prefix}{i:03d}", (x.astype(np.float32), SR), {"label": label}


@pytest.mark.slow
@pytest.mark.parametrize("crop", [None, 1])  # X-ARES crops need crop_length * sr to be an int
def test_knn_equals_xares_package(tmp_path, crop):
    require_oracle("xares.task")
    name = "toyoracle"
    env = tmp_path / "env"
    data = env / name
    write_audio_shards(data, "train-%06d.tar", _items(0, 60, "tr"), maxcount=1000)
    write_audio_shards(data, "valid-%06d.tar", _items(1, 9, "va"), maxcount=1000)
    write_audio_shards(data, "test-%06d.tar", _items(2, 30, "te"), maxcount=1000)
    (data / ".audio_tar_ready").touch()
    proc = subprocess.run(
        [sys.executable, str(ORACLE), str(env), name, json.dumps(CLASSES), str(crop).lower(), "4"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])["knn"]

    task = TaskConfig(
        name=name,
        domain="sound",
        labels=LabelSpec("class", "label", classes=tuple(CLASSES)),
        output_dim=3,
        data_dir=str(data),
        eval_weight=30,
        batch_size_encode=4,
        crop_length=crop,
    )
    opts = RunOptions(
        protocol="xares", tracks=("knn",), cache_root=str(tmp_path / "cache"), show_progress=False, bootstrap_rounds=10
    )
    ours = evaluate(LogMelEncoder(), [task], opts)
    assert ours.raw.iloc[0] == pytest.approx(theirs, abs=1e-9)
    # the fixed protocol keeps every crop and each clip's own frames, so it scores differently here
    fixed = evaluate(
        LogMelEncoder(),
        [task],
        RunOptions(tracks=("knn",), cache_root=str(tmp_path / "cache"), show_progress=False, bootstrap_rounds=10),
    )
    if crop is None:
        assert fixed.test_count.iloc[0] == ours.test_count.iloc[0] == 30
    else:  # X-ARES keeps one crop per file per encode batch; xbench keeps them all
        assert fixed.test_count.iloc[0] > ours.test_count.iloc[0] > 30
