"""End to end: shards + a declaration file -> `evaluate` / `xbench run`, reruns, resume, protocols."""

import json
import subprocess
import sys

import numpy as np
import pytest

from xbench.data.writer import write_audio_shards
from xbench.embed import encode as embed_mod
from xbench.embed.cache import marker_path
from xbench.encoders.baselines import LogMelEncoder
from xbench.pipeline.run import RunOptions, evaluate, summary_table
from xbench.taskspec.config import LabelSpec, TaskConfig
from xbench.taskspec.registry import get_task

SR = 16000
CLASSES = ("low", "mid", "high")
FREQS = {"low": 300.0, "mid": 900.0, "high": 2500.0}


def _tone(rng, label, seconds):
    t = np.arange(int(seconds * SR)) / SR
    f = FREQS[label] * rng.uniform(0.9, 1.1)
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _items(seed, n, prefix):
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = CLASSES[i % 3]
        yield f"{prefix}{i:03d}", (_tone(rng, label, rng.uniform(0.6, 1.6)), SR), {"label": label}


@pytest.fixture
def toy(tmp_path):
    """A 3-class tone task (train/valid/test, two shards for train) declared in a user tasks dir."""
    data = tmp_path / "data"
    write_audio_shards(data, "toy_train-%06d.tar", _items(0, 36, "tr"), maxcount=18)
    write_audio_shards(data, "toy_valid-%06d.tar", _items(1, 12, "va"), maxcount=100)
    write_audio_shards(data, "toy_test-%06d.tar", _items(2, 15, "te"), maxcount=100)
    task = TaskConfig(
        name="toy_tones",
        domain="sound",
        labels=LabelSpec("class", "label", classes=CLASSES),
        output_dim=3,
        train_split="toy_train",
        valid_split="toy_valid",
        test_split="toy_test",
        data_dir=str(data),
        eval_weight=15,
        epochs=4,
        batch_size_encode=4,
        learning_rate=1e-2,
    )
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "toy_tones.json").write_text(json.dumps(task.to_dict()))
    return tmp_path, tasks_dir


def _opts(root, **kw):
    return RunOptions(
        cache_root=str(root / "cache"), output_dir=str(root / "out"), bootstrap_rounds=50, show_progress=False, **kw
    )


def test_run_is_reproducible_and_resumes(toy, monkeypatch):
    root, tasks_dir = toy
    task = get_task("toy_tones", tasks_dir)
    first = evaluate(LogMelEncoder(), [task], _opts(root))
    assert set(first.track) == {"mlp", "knn"}
    assert (first.score > 0.6).all(), first
    assert (first.ci_low <= first.score).all() and (first.score <= first.ci_high).all()
    assert first.test_count.iloc[0] == 15

    # a second run from scratch (new output and cache) gives identical numbers
    again = evaluate(
        LogMelEncoder(),
        [task],
        RunOptions(
            cache_root=str(root / "cache2"), output_dir=str(root / "out2"), bootstrap_rounds=50, show_progress=False
        ),
    )
    assert first[["raw", "score", "ci_low", "ci_high"]].equals(again[["raw", "score", "ci_low", "ci_high"]])

    # "kill" the run during embedding: one unit lost its done-marker, results were not written
    units = sorted((root / "cache").rglob("*.npz"))
    assert len(units) == 4  # train has two shards, valid and test one each
    marker_path(units[0]).unlink()
    for p in (root / "out").rglob("toy_tones@v1.json"):
        p.unlink()
    calls = []
    real = embed_mod.embed_unit
    monkeypatch.setattr("xbench.pipeline.run.embed_unit", lambda *a, **k: calls.append(a[1].path) or real(*a, **k))
    resumed = evaluate(LogMelEncoder(), [task], _opts(root))
    assert calls == [units[0]]
    assert first[["raw", "score"]].equals(resumed[["raw", "score"]])


def test_cache_is_keyed_by_weights(toy):
    root, tasks_dir = toy
    task = get_task("toy_tones", tasks_dir)
    evaluate(LogMelEncoder(), [task], _opts(root, tracks=("knn",)))
    from xbench.encoders.baselines import RandomProjectionEncoder

    # same class, different weights (seeded projection): two cache entries
    a, b = RandomProjectionEncoder(seed=0), RandomProjectionEncoder(seed=1)
    evaluate(a, [task], _opts(root, tracks=("knn",)))
    evaluate(b, [task], _opts(root, tracks=("knn",)))
    slugs = {p.name for p in (root / "cache" / "embeddings").iterdir()}
    assert len(slugs) == 3 and all(s.startswith(("LogMelEncoder-", "RandomProjectionEncoder-")) for s in slugs)


def test_xares_protocol_keeps_batch_padding(toy):
    root, tasks_dir = toy
    task = get_task("toy_tones", tasks_dir)
    evaluate(LogMelEncoder(), [task], _opts(root, protocol="xares", tracks=("knn",)))
    from xbench.embed.cache import read_unit

    (unit_path,) = (root / "cache").rglob("xares/toy_test/all.npz")
    unit = read_unit(unit_path)
    lengths = np.diff(unit.offsets)
    # every clip carries the padded frame count of its encode batch (4 clips per batch)
    for start in range(0, len(unit), 4):
        assert len(set(lengths[start : start + 4])) == 1
    assert len(set(lengths)) > 1


def test_cli_run_prints_table_and_writes_results(toy):
    root, tasks_dir = toy
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xbench",
            "run",
            "--encoder",
            "logmel",
            "--tasks",
            "toy_tones",
            "--tasks-dir",
            str(tasks_dir),
            "--output",
            str(root / "cli"),
            "--cache-dir",
            str(root / "cache"),
            "--bootstrap",
            "20",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Weighted average MLP (all, 1 tasks)" in proc.stdout
    (summary,) = (root / "cli").rglob("summary.csv")
    assert "toy_tones" in summary.read_text()
    missing = subprocess.run(
        [sys.executable, "-m", "xbench", "run", "--encoder", "logmel", "--tasks", "nope"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_summary_table_lists_averages(toy):
    root, tasks_dir = toy
    frame = evaluate(LogMelEncoder(), [get_task("toy_tones", tasks_dir)], _opts(root))
    text = summary_table(frame)
    assert "Weighted average KNN (public, 1 tasks)" in text


def test_saved_results_are_reused_only_with_the_same_settings(toy, monkeypatch):
    root, tasks_dir = toy
    task = get_task("toy_tones", tasks_dir)
    knn_only = evaluate(LogMelEncoder(), [task], _opts(root, tracks=("knn",)))
    assert list(knn_only.track) == ["knn"]
    calls = []
    real = embed_mod.embed_unit
    monkeypatch.setattr("xbench.pipeline.run.embed_unit", lambda *a, **k: calls.append(1) or real(*a, **k))
    both = evaluate(LogMelEncoder(), [task], _opts(root))  # other tracks: rescored, but from the cache
    assert set(both.track) == {"mlp", "knn"} and calls == []
    assert both[both.track == "knn"].raw.iloc[0] == knn_only.raw.iloc[0]
    with pytest.raises(FileExistsError, match="toy_tones.*overwrite='never'"):
        evaluate(LogMelEncoder(), [task], _opts(root, tracks=("knn",), overwrite="never"))


def test_top_level_api_accepts_task_names(toy, monkeypatch):
    import xbench

    root, tasks_dir = toy
    task = get_task("toy_tones", tasks_dir)
    frame = xbench.evaluate(LogMelEncoder(), [task], _opts(root, tracks=("knn",)))
    assert list(frame.task) == ["toy_tones"]
    with pytest.raises(LookupError, match="no_such_task"):
        xbench.evaluate(LogMelEncoder(), ["no_such_task"], _opts(root))


def test_a_track_the_task_lacks_gives_an_empty_result(toy):
    """`tracks=("knn",)` on a task without kNN: a result with no tracks, no predictions file, no error."""
    import dataclasses

    root, tasks_dir = toy
    task = dataclasses.replace(get_task("toy_tones", tasks_dir), do_knn=False)
    frame = evaluate(LogMelEncoder(), [task], _opts(root, tracks=("knn",)))
    assert frame.empty
    (path,) = (root / "out").rglob("toy_tones@v1.json")
    assert json.loads(path.read_text())["tracks"] == {}
    assert not list(path.parent.glob("*.npz"))
