"""``--lite N``: a seeded, class-stratified subset of at most N clips per split; results marked lite under
``<output>/lite-N``; the leaderboard refuses to merge a lite run with a full one."""

import json
import tarfile
from collections import Counter

import numpy as np
import pytest

from xbench.cli import main
from xbench.data.shards import iter_samples, sample_json
from xbench.pipeline.lite import allocate, lite_task
from xbench.pipeline.run import RunOptions, evaluate
from xbench.report.leaderboard import LeaderboardError, load_results, merge, write_leaderboard

from conftest import clip_task, tone_items

FREQS = {"a": 300.0, "b": 1000.0, "c": 3000.0}


@pytest.fixture
def task(tmp_path):
    """Three splits of 9 a, 6 b and 3 c clips, in shards of four."""
    labels = ["a", "b", "a", "c", "a", "b"] * 3
    splits = {s: tone_items(seed, labels, FREQS, s[:2], 0.25) for seed, s in enumerate(("train", "valid", "test"))}
    return clip_task(tmp_path / "data", "lite_tones", splits, tuple(FREQS), per_shard=4, epochs=1)


def _labels(task, shard):
    return [(s.key, sample_json(s)["label"]) for s in iter_samples(shard, extensions=("json",))]


def test_allocation_is_proportional_with_every_class_while_n_allows():
    rng = np.random.default_rng(0)
    assert allocate({"a": 9, "b": 6, "c": 3}, 6, rng) == {"a": 3, "b": 2, "c": 1}
    assert allocate({"a": 90, "b": 6, "c": 1}, 5, rng) == {"a": 3, "b": 1, "c": 1}  # the rare class kept
    assert allocate({"a": 2, "b": 1}, 10, rng) == {"a": 2, "b": 1}  # fewer clips than N: all
    few = allocate({c: 5 for c in "abcdef"}, 4, np.random.default_rng(1))
    assert sum(few.values()) == 4 and set(few.values()) == {0, 1}
    assert few == allocate({c: 5 for c in "abcdef"}, 4, np.random.default_rng(1))  # seeded


def test_lite_task_writes_a_stratified_seeded_subset(tmp_path, task):
    lite = lite_task(task, 6, cache_root=tmp_path / "cache")
    assert lite.fingerprint() != task.fingerprint() and lite.name == task.name
    for split in ("train", "valid", "test"):
        (shard,) = sorted((tmp_path / "cache" / "lite").rglob(f"{split}-lite-0.tar"))
        assert lite.audio_tar_name_of_split[split] == shard.name
        chosen = _labels(lite, shard)
        assert Counter(label for _, label in chosen) == {"a": 3, "b": 2, "c": 1}
        originals = {}
        for source in sorted((tmp_path / "data").glob(f"{split}-*.tar")):
            with tarfile.open(source) as tar:
                originals.update({m.name: tar.extractfile(m).read() for m in tar.getmembers()})
        with tarfile.open(shard) as tar:  # the clips' audio bytes as they were, in their original order
            names = [m.name for m in tar.getmembers() if m.name.endswith(".wav")]
            assert all(tar.extractfile(name).read() == originals[name] for name in names)
        assert names == sorted(names)
    again = lite_task(task, 6, cache_root=tmp_path / "other")
    assert _labels(again, next((tmp_path / "other").rglob("train-lite-0.tar"))) == _labels(
        lite, next((tmp_path / "cache").rglob("train-lite-0.tar"))
    )


def test_lite_results_are_marked_and_refused_beside_a_full_run(tmp_path, task, capsys):
    out, cache = tmp_path / "out", str(tmp_path / "cache")
    opts = dict(tracks=("knn",), output_dir=str(out), cache_root=cache, bootstrap_rounds=5, show_progress=False)
    lite = evaluate("logmel", [task], RunOptions(lite=4, **opts))
    full = evaluate("logmel", [task], RunOptions(**opts))
    assert (lite.lite == 4).all() and (full.lite == 0).all()
    assert int(lite.test_count.iloc[0]) == 4 and int(full.test_count.iloc[0]) == 18
    slug = full.encoder.iloc[0]
    assert slug.startswith("logmel-") and lite.encoder.iloc[0] == slug  # same encoder, same name
    record = json.loads((out / "lite-4" / slug / "xbench" / "lite_tones@v1.json").read_text())
    assert record["lite"] == 4 and "lite" not in json.loads((out / slug / "xbench" / "lite_tones@v1.json").read_text())
    with pytest.raises(LeaderboardError, match=r"refusing to merge --lite runs with full runs .*full: logmel-.*lite 4"):
        merge([load_results(out)])
    assert merge([load_results(out / "lite-4")]).lite.unique().tolist() == [4]
    for folder, mark in ((out / "lite-4", True), (out / slug, False)):  # a lite board says so in its tables
        paths = write_leaderboard(merge([load_results(folder)]), tmp_path / folder.name / "board.csv")
        assert ("kNN track (lite 4: at most 4 clips per split" in paths["markdown"].read_text()) is mark
    capsys.readouterr()
    assert main(["leaderboard", str(out / slug), str(out / "lite-4"), "--out", str(tmp_path / "board.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "refusing to merge --lite runs" in err
    with pytest.raises(ValueError, match="lite must be a positive number"):
        RunOptions(lite=0)
