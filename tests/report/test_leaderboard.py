"""Leaderboard export: X-ARES layout, averages that recompute from the long CSV, protocols, reruns, plots."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from xbench.data.writer import write_audio_shards
from xbench.encoders.baselines import LogMelEncoder, RandomProjectionEncoder
from xbench.pipeline.run import RunOptions, evaluate
from xbench.report.leaderboard import LeaderboardError, averages, load_published, load_results, merge
from xbench.taskspec.config import LabelSpec, TaskConfig

SR = 16000


@pytest.fixture(scope="module")
def board_runs(tmp_path_factory):
    """Two encoders scored on two small tasks (one private); the output folder, tasks and options."""
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
    opts = RunOptions(output_dir=str(out), cache_root=str(root / "cache"), bootstrap_rounds=20, show_progress=False)
    for enc in (LogMelEncoder(), RandomProjectionEncoder()):
        evaluate(enc, tasks, opts)
    return SimpleNamespace(out=out, tasks=tasks, opts=opts)


@pytest.fixture(scope="module")
def two_runs(board_runs):
    return board_runs.out


def test_layout_and_averages_recompute_from_the_long_csv(two_runs, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xbench",
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
        want_all = (rows.score * rows.weight).sum() / rows.weight.sum()
        want_public = (public.score * public.weight).sum() / public.weight.sum()
        avg = pd.read_csv(tmp_path / "board-averages.csv")
        got = avg[(avg.encoder == enc) & (avg.track == track)].set_index("group").score
        assert got["all"] == pytest.approx(want_all, abs=1e-12)
        assert got["public"] == pytest.approx(want_public, abs=1e-12)
        # the README-layout CSV: the track's tasks, then its public and all averages (same values)
        section = board[board.track == track]
        assert section.task.tolist() == ["lb_a", "lb_b", "average_public", "average_all"]
        assert section.formal_name.tolist()[-2:] == ["Weighted average (public)", "Weighted average (all)"]
        cells = section.set_index("task")[enc]
        assert cells["average_all"] == pytest.approx(want_all, abs=1e-12)
        assert cells["average_public"] == pytest.approx(want_public, abs=1e-12)
        assert cells["lb_a"] == rows.set_index("task").score["lb_a"]
    assert (tmp_path / "plots" / "tasks_mlp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plots: 8 files" in proc.stdout


def test_a_rerun_that_reuses_results_writes_the_same_summary(board_runs, monkeypatch):
    """Reused results (read back from JSON) and fresh ones give byte-identical summary.csv (rows by task, track)."""
    from xbench.encoders.baselines import LogMelEncoder

    (summary,) = [p for p in board_runs.out.rglob("summary.csv") if "LogMel" in str(p)]
    first = summary.read_bytes()
    lines = first.decode().splitlines()
    assert lines[0].split(",")[:2] == ["encoder", "task"]
    keys = [tuple(line.split(",")[i] for i in (1, 5)) for line in lines[1:]]
    assert keys == sorted(keys) == [("lb_a", "knn"), ("lb_a", "mlp"), ("lb_b", "knn"), ("lb_b", "mlp")]
    monkeypatch.setattr("xbench.pipeline.run.TaskRunner.score", lambda *a, **k: pytest.fail("rescored"))
    frame = evaluate(LogMelEncoder(), list(reversed(board_runs.tasks)), board_runs.opts)
    assert summary.read_bytes() == first
    assert frame.to_csv(index=False).encode() == first


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


def _result(task, slug, score, protocol="xares", weight=400, private=False, domain="sound"):
    """A per-task result JSON as `xbench run` writes it (the fields the leaderboard reads)."""
    return {
        "task": task,
        "formal_name": task.upper(),
        "task_version": 1,
        "domain": domain,
        "private": private,
        "weight": weight,
        "protocol": protocol,
        "encoder_slug": slug,
        "tracks": {
            "mlp": {"metric": "accuracy", "raw": score, "score": score, "ci95": [score - 0.05, score + 0.05]},
            "knn": {"metric": "accuracy", "raw": score / 2, "score": score / 2, "ci95": [0.0, score]},
        },
    }


def test_published_table_layout_and_librispeech_variant():
    from xbench.report.leaderboard import markdown, wide

    board = wide(load_published())
    assert list(board.columns) == [
        "track",
        "task",
        "formal_name",
        "private",
        "dasheng",
        "wav2vec2",
        "whisper",
        "data2vec",
    ]
    mlp, knn = board[board.track == "mlp"], board[board.track == "knn"]
    assert len(mlp) == 27 + 2 and len(knn) == 20 + 2
    assert mlp.formal_name.iloc[0] == "ASV2015" and mlp.formal_name.iloc[-2:].tolist() == [
        "Weighted average (public)",
        "Weighted average (all)",
    ]
    text = markdown(board)
    assert "| Key scratching car (private) | 0.999 | 0.983 | 0.985 | 0.909 |" in text
    assert "| Weighted average (all) | 0.683 | 0.469 | 0.475 | 0.455 |" in text
    newer = load_published("v0.1.3")
    row = newer[(newer.encoder == "dasheng") & (newer.task == "librispeech")]
    assert row.score.item() == pytest.approx(0.724)


def test_a_xares_run_sits_beside_the_published_table(tmp_path):
    run = tmp_path / "runs" / "Mine-abc" / "xares"
    run.mkdir(parents=True)
    (run / "esc50@v1.json").write_text(json.dumps(_result("esc50", "Mine-abc", 0.7)))
    (run / "summary.json").write_text(json.dumps({"results": [_result("esc50", "Mine-abc", 0.7)]}))
    # a folder (summary.json not double counted), a summary.json file, and a rename
    assert len(load_results(tmp_path / "runs")) == 2
    assert load_results(run / "summary.json").equals(load_results(run))
    renamed = load_results(f"mine={run}")
    assert set(renamed.encoder) == {"mine"}
    board_all = merge([renamed, load_published()])
    assert set(board_all.encoder) == {"mine", "dasheng", "wav2vec2", "whisper", "data2vec"}
    common = merge([renamed, load_published()], common_tasks=True)
    assert set(common.task) == {"esc50"}
    avg = averages(common).set_index(["encoder", "track", "group"]).score
    assert avg["dasheng", "knn", "all"] == pytest.approx(0.618) and avg["mine", "mlp", "public"] == pytest.approx(0.7)


def test_conflicting_inputs_are_refused(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_result("t1", "E-1", 0.5, protocol="xbench")))
    b.write_text(json.dumps(_result("t1", "E-1", 0.6, protocol="xbench")))
    with pytest.raises(LeaderboardError, match="several inputs"):
        merge([load_results(a), load_results(b)])
    b.write_text(json.dumps(_result("t1", "E-2", 0.6, protocol="xbench", weight=999)))
    with pytest.raises(LeaderboardError, match="weight differs"):
        merge([load_results(a), load_results(b)])
    b.write_text(json.dumps(_result("t1", "E-2", 0.6, protocol="xares")))
    assert set(merge([load_results(a), load_results(b)], protocol="xares").encoder) == {"E-2"}
    with pytest.raises(LeaderboardError, match="no such"):
        load_results(tmp_path / "missing")
