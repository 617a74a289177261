"""Labels checked from the shards' json members alone (xbench.data.labels.check_labels), audio left unread."""

import json

import numpy as np
import pytest
from test_audio_io import _raw_tar as _tar

from xbench.data.labels import ClipLabelError, check_labels
from xbench.data.shards import ShardError, iter_samples
from xbench.data.writer import encode_audio
from xbench.taskspec.config import LabelError, LabelSpec, TaskConfig

CLASSES = ("dog", "cat")
WAV = encode_audio(np.zeros(1600, np.float32), 16000, "wav")


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


def _task(labels: LabelSpec, task_type: str = "clip") -> TaskConfig:
    return TaskConfig(name="pets", domain="sound", task_type=task_type, labels=labels, output_dim=len(CLASSES))


CLIP = _task(LabelSpec("class", "animal", classes=CLASSES))
EVENTS = _task(
    LabelSpec("events", "event", classes=CLASSES, start_key="onset", end_key="offset", clip_seconds=10.0), "frame"
)


def test_only_json_members_are_read(tmp_path):
    # the audio members are not even valid wav: checking labels must not decode (or read) them
    shard = _tar(tmp_path / "a.tar", [("k1.wav", b"not audio"), ("k1.json", _json({"animal": "dog"})),
                                      ("k2.flac", b"x" * 5000), ("k2.json", _json({"animal": "cat"}))])  # fmt: skip
    assert check_labels(CLIP, "train", [shard]) == 2
    samples = list(iter_samples(shard, extensions=("json",)))
    assert [(s.key, sorted(s.members), sorted(s.unread)) for s in samples] == [
        ("k1", ["json"], ["wav"]),
        ("k2", ["json"], ["flac"]),
    ]


def test_an_unknown_class_names_task_split_shard_and_key(tmp_path):
    good = _tar(tmp_path / "a.tar", [("k1.wav", WAV), ("k1.json", _json({"animal": "dog"}))])
    bad = _tar(tmp_path / "b.tar", [("k2.wav", WAV), ("k2.json", _json({"animal": "dog"})),
                                    ("k3.wav", WAV), ("k3.json", _json({"animal": "cow"}))])  # fmt: skip
    with pytest.raises(ClipLabelError) as err:
        check_labels(CLIP, "valid", [bad, good])
    assert str(err.value) == (
        f"task pets, split valid, shard {bad}, key 'k3': json key 'animal': unknown label 'cow' (not among 2 classes)"
    )
    assert isinstance(err.value, LabelError) and isinstance(err.value, ShardError)
    assert (err.value.task, err.value.split, err.value.shard, err.value.key) == ("pets", "valid", str(bad), "k3")


def test_frame_labels_are_checked_item_by_item(tmp_path):
    events = [{"onset": 0.5, "offset": 1.0, "event": "dog"}, {"onset": 2.0, "offset": 3.0, "event": "cat"}]
    ok = _tar(tmp_path / "ok.tar", [("k1.wav", WAV), ("k1.json", _json(events))])
    assert check_labels(EVENTS, "train", [ok]) == 1
    for name, broken, problem in (
        ("class", [*events, {"onset": 4.0, "offset": 5.0, "event": "owl"}], "unknown label 'owl'"),
        ("keys", [{"onset": 4.0, "event": "dog"}], "needs keys 'onset', 'offset', 'event'"),
        ("times", [{"onset": "4", "offset": 5.0, "event": "dog"}], "times must be numbers"),
    ):
        shard = _tar(tmp_path / f"{name}.tar", [("k9.wav", WAV), ("k9.json", _json(broken))])
        with pytest.raises(ClipLabelError, match=f"split train, shard .*{name}.tar, key 'k9': .*{problem}"):
            check_labels(EVENTS, "train", [shard])


def test_a_sample_without_json_or_audio_is_a_shard_error(tmp_path):
    no_json = _tar(tmp_path / "a.tar", [("k1.wav", WAV)])
    with pytest.raises(ShardError, match=r"key 'k1': has a \.wav audio member but no \.json member"):
        check_labels(CLIP, "train", [no_json])
    no_audio = _tar(tmp_path / "b.tar", [("k2.json", _json({"animal": "dog"}))])
    with pytest.raises(ShardError, match=r"key 'k2': has a json member but no audio member"):
        check_labels(CLIP, "train", [no_audio])


def test_committed_units_are_not_read_again(tmp_path, monkeypatch):
    """A rerun from the cache reads no shard for its labels (they passed before the unit was embedded); a run
    that embeds again (``overwrite='always'``) checks them again."""
    import xbench.pipeline.run as run
    from xbench.pipeline.run import RunOptions, evaluate

    from conftest import clip_task, tone_items

    splits = {split: tone_items(i, ["dog", "cat"] * 2, {"dog": 300.0, "cat": 2000.0}, split[:2])
              for i, split in enumerate(("train", "valid", "test"))}  # fmt: skip
    task = clip_task(tmp_path / "data", "pets_cached", splits, CLASSES, epochs=1)
    checked = []
    real = run.check_labels

    def counting(task, split, shards):
        checked.append(split)
        return real(task, split, shards)

    monkeypatch.setattr(run, "check_labels", counting)

    def score(out: str, overwrite: str = "missing") -> None:
        opts = RunOptions(tracks=("knn",), output_dir=str(tmp_path / out), cache_root=str(tmp_path / "cache"),
                          bootstrap_rounds=5, show_progress=False, overwrite=overwrite)  # fmt: skip
        evaluate("logmel", [task], opts)

    score("first")
    assert sorted(checked) == ["test", "train", "valid"]
    checked.clear()
    score("second")  # results elsewhere, units committed: scored from the cache alone
    assert checked == []
    score("third", overwrite="always")
    assert sorted(checked) == ["test", "train", "valid"]
