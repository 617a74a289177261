"""Leaderboard export: X-ARES layout, averages that recompute from the long CSV, protocols, plots."""

import json
import struct
import subprocess
import sys
import zlib

import pandas as pd
import pytest

from xbench.encoders.baselines import LogMelEncoder, RandomProjectionEncoder
from xbench.evaluate import RunOptions, evaluate
from xbench.leaderboard import LeaderboardError, averages, load_published, load_results, merge
from xbench.shard_writer import write_audio_shards
from xbench.task_config import LabelSpec, TaskConfig

SR = 16000


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    import numpy as np

    root = tmp_path_factory.mktemp("board")
    tasks = []
    for n, (name, domain, private) in enumerate([("lb_a", "speech", False), ("lb_b", "sound", True)]):
        rng = np.random.default_rng(n)
        for split, count in (("train", 24), ("valid", 6), ("test", 12)):
            items = []
            for i in range(count):
                label = ("x", "y")[i % 2]
                t = np.arange(SR // 2) / SR
                x = 0.3 * np.sin(2 * np.pi * (300 if label == "x" else 900 + 300 * n) * t)
                items.append(
                    (f"{split}{i}", ((x + 0.2 * rng.standard_normal(t.size)).astype(np.float32), SR), {"label": label})
                )
            write_audio_shards(root / name, f"{split}-%06d.tar", items, maxcount=100)
        tasks.append(
            TaskConfig(
                name=name,
                domain=domain,
                private=private,
                labels=LabelSpec("class", "label", classes=("x", "y")),
                output_dim=2,
                data_dir=str(root / name),
                eval_weight=10 + 20 * n,
                epochs=3,
            )
        )
    out = root / "out"
    for enc in (LogMelEncoder(), RandomProjectionEncoder()):
        evaluate(
            enc,
            tasks,
            RunOptions(output_dir=str(out), cache_root=str(root / "cache"), bootstrap_rounds=20, show_progress=False),
        )
    return out


def test_layout_and_averages_recompute_from_the_long_csv(two_runs, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xbench.cli",
            "leaderboard",
            str(two_runs),
            "--out",
            str(tmp_path / "board.csv"),
            "--plot",
            str(tmp_path / "plots"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    board = pd.read_csv(tmp_path / "board.csv")
    long = pd.read_csv(tmp_path / "board-long.csv")
    encoders = sorted(long.encoder.unique())
    assert len(encoders) == 2 and all(e in board.columns for e in encoders)
    assert set(board.track) == {"mlp", "knn"}
    for (enc, track), rows in long.groupby(["encoder", "track"]):
        public = rows[~rows.private]
        want_all = (rows.normalised * rows.weight).sum() / rows.weight.sum()
        want_public = (public.normalised * public.weight).sum() / public.weight.sum()
        avg = pd.read_csv(tmp_path / "board-averages.csv")
        got = avg[(avg.encoder == enc) & (avg.track == track)].set_index("group").score
        assert got["all"] == pytest.approx(want_all, abs=1e-12)
        assert got["public"] == pytest.approx(want_public, abs=1e-12)
    png = (tmp_path / "plots" / "tasks_mlp.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    idat = png[png.index(b"IDAT") + 4 : png.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == height * (1 + 3 * width)


def test_published_knn_averages_reproduce_the_readme():
    pub = load_published()
    avg = averages(pub)
    knn = avg[(avg.encoder == "dasheng") & (avg.track == "knn")].set_index("group").score
    assert knn["public"] == pytest.approx(0.504, abs=0.001)
    assert knn["all"] == pytest.approx(0.683, abs=0.001)


def test_protocols_are_never_mixed(two_runs):
    ours = load_results(two_runs)
    with pytest.raises(LeaderboardError, match="protocol"):
        merge([ours, load_published()])


def test_run_writes_result_json_with_protocol(two_runs):
    (result,) = [p for p in two_runs.rglob("lb_a@v1.json") if "LogMel" in str(p)]
    assert json.loads(result.read_text())["protocol"] == "xbench"
