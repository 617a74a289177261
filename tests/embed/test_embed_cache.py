"""The embedding cache's done-marker: a unit counts as done only when its marker holds the key it is asked for.

Expectations from the cache's contract, not from its output: a unit written under one key is not done for
another; a run whose cache key differs (here the stored frame dtype, which is in the key but not in the
unit's path) embeds again and stores what it asked for.
"""

from __future__ import annotations

import json

import numpy as np

from xbench.embed.cache import is_complete, key_hash, marker_path, read_unit, write_unit
from xbench.encoders.baselines import LogMelEncoder
from xbench.pipeline.run import RunOptions, evaluate

from conftest import clip_task, tone_items

KEY = {"encoder": {"name": "toy", "sha": "a" * 8}, "task": "t", "split": "train", "cache_dtype": "float16"}
OTHER = {**KEY, "cache_dtype": "float32"}


def _write(path, key=KEY):
    clips = [{"key": f"c{i}", "source_key": f"c{i}", "crop_index": None, "num_samples": 160, "meta": {"y": i}} for i in
             range(2)]  # fmt: skip
    frames = [np.full((3, 4), i, dtype=np.float32) for i in range(2)]
    write_unit(path, clips, frames, 4, key)


def test_a_unit_is_done_only_for_the_key_in_its_marker(tmp_path):
    unit = tmp_path / "u.npz"
    assert not is_complete(unit, key_hash(KEY))  # nothing written yet
    _write(unit)
    assert key_hash(KEY) != key_hash(OTHER)
    assert is_complete(unit, key_hash(KEY))
    assert not is_complete(unit, key_hash(OTHER))
    assert not is_complete(unit, "")
    good = key_hash(KEY)
    assert not is_complete(unit, good[:-1] + ("1" if good[-1] == "0" else "0"))  # one hex digit off


def test_key_hash_is_order_free_and_sensitive_to_every_field():
    reordered = dict(reversed(list(KEY.items())))
    assert key_hash(reordered) == key_hash(KEY)
    for field in KEY:
        changed = {**KEY, field: "something else"}
        assert key_hash(changed) != key_hash(KEY), field
    assert key_hash({**KEY, "encoder": {**KEY["encoder"], "sha": "b" * 8}}) != key_hash(KEY)


def test_a_marker_with_another_or_no_hash_or_no_unit_is_not_done(tmp_path):
    unit = tmp_path / "u.npz"
    _write(unit)
    marker = marker_path(unit)
    record = json.loads(marker.read_text())
    marker.write_text(json.dumps({**record, "key_hash": key_hash(OTHER)}))
    assert not is_complete(unit, key_hash(KEY)) and is_complete(unit, key_hash(OTHER))
    marker.write_text(json.dumps({k: v for k, v in record.items() if k != "key_hash"}))
    assert not is_complete(unit, key_hash(KEY))
    marker.write_text("{not json")
    assert not is_complete(unit, key_hash(KEY))
    marker.unlink()
    assert not is_complete(unit, key_hash(KEY))
    _write(unit)
    unit.unlink()
    assert not is_complete(unit, key_hash(KEY))


# -- end to end: a changed key re-embeds --------------------------------------------------------------------

FREQS = {"low": 300.0, "high": 1500.0}


def test_a_run_with_another_cache_key_embeds_again(tmp_path):
    labels = ["low", "high"] * 6
    splits = {s: tone_items(i, labels[:n], FREQS, s) for i, (s, n) in enumerate((("tr", 12), ("va", 4), ("te", 6)))}
    tiny_task = clip_task(tmp_path / "data", "tiny_cache", splits, list(FREQS))

    def run(dtype, out):
        opts = RunOptions(
            tracks=("knn",),
            cache_root=str(tmp_path / "cache"),
            output_dir=str(tmp_path / out),
            cache_dtype=dtype,
            bootstrap_rounds=10,
            show_progress=False,
        )
        evaluate(LogMelEncoder(), [tiny_task], opts)
        units = sorted((tmp_path / "cache").rglob("*.npz"))
        assert len(units) == 3  # one shard per split; the dtype is in the key, not in the path
        return units

    units = run("float16", "out16")
    assert {read_unit(u).frames.dtype for u in units} == {np.dtype("float16")}
    markers = {u: json.loads(marker_path(u).read_text())["key_hash"] for u in units}
    assert run("float32", "out32") == units
    assert {read_unit(u).frames.dtype for u in units} == {np.dtype("float32")}
    assert all(json.loads(marker_path(u).read_text())["key_hash"] != markers[u] for u in units)
