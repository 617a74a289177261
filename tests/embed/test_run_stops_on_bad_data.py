"""Faults that used to be scored as if valid, or found only after the whole embedding stage, stop the run early.

A NaN/Inf embedding, a NaN audio sample and an unusable label each raise an error naming task, split,
shard and clip key; nothing is marked done for the unit at fault and no result is written; the command
line prints one ``error:`` line and exits 2.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from xbench.data.labels import ClipLabelError
from xbench.data.shards import ShardError
from xbench.data.writer import write_audio_shards
from xbench.embed.cache import marker_path
from xbench.embed.encode import NonFiniteEmbeddingError
from xbench.pipeline.run import RunOptions, evaluate
from xbench.taskspec.config import LabelSpec, TaskConfig

SR = 16000
CLASSES = ("low", "high")
ODD_SAMPLES = 12_000  # the one 0.75 s clip: keyed te002 in the test split


def _items(prefix, n, odd=None, label=None):
    rng = np.random.default_rng(len(prefix) + n)
    for i in range(n):
        samples = ODD_SAMPLES if i == odd else SR
        meta = {"label": label if (label is not None and i == odd) else CLASSES[i % 2]}
        yield f"{prefix}{i:03d}", ((0.1 * rng.standard_normal(samples)).astype(np.float32), SR), meta


def _task(data, **kw):
    return TaskConfig(
        name="faulty",
        domain="sound",
        labels=LabelSpec("class", "label", classes=CLASSES),
        output_dim=2,
        data_dir=str(data),
        epochs=1,
        batch_size_encode=4,
        **kw,
    )


def _data(root, test_label=None):
    data = root / "data"
    write_audio_shards(data, "train-%06d.tar", _items("tr", 8), maxcount=100)
    write_audio_shards(data, "valid-%06d.tar", _items("va", 4), maxcount=100)
    write_audio_shards(data, "test-%06d.tar", _items("te", 6, odd=2, label=test_label), maxcount=100)
    return data


class FlatEncoder(torch.nn.Module):
    """Mean of 10 ms frames, 4 dims; ``bad`` replaces the frames of a clip of ODD_SAMPLES samples."""

    sampling_rate, hop_size_in_ms, output_dim = SR, 10, 4
    bad: float | None = None

    def forward(self, audio):
        frames = audio.unfold(-1, 160, 160)[..., :4].clone()
        if self.bad is not None and audio.shape[-1] == ODD_SAMPLES:
            frames[:, 3, 1] = self.bad
        return frames


class RaisingEncoder(FlatEncoder):
    def forward(self, audio):
        raise AssertionError("the encoder must not be called")


def _opts(root):
    return RunOptions(cache_root=str(root / "cache"), output_dir=str(root / "out"), bootstrap_rounds=10,
                      show_progress=False)  # fmt: skip


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_embedding_names_its_clip_and_leaves_the_unit_undone(tmp_path, bad):
    task = _task(_data(tmp_path))
    encoder = FlatEncoder()
    encoder.bad = bad
    with pytest.raises(NonFiniteEmbeddingError) as err:
        evaluate(encoder, [task], _opts(tmp_path))
    message = str(err.value)
    assert "task faulty, split test, shard " in message and "test-000000.tar, key 'te002'" in message
    assert "1 NaN/Inf value(s)" in message
    units = {p.parent.name: p for p in (tmp_path / "cache").rglob("*.npz")}
    assert set(units) == {"train", "valid"}  # committed before the test split failed
    assert all(marker_path(p).is_file() for p in units.values())
    assert not list((tmp_path / "cache").rglob("test/*"))  # neither the unit nor its done-marker
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.json"))


def test_a_nan_audio_sample_is_a_data_error_before_the_encoder_sees_it(tmp_path):
    data = tmp_path / "data"
    wave = np.full(SR, 0.1, dtype=np.float32)
    wave[100] = np.nan
    items = [("tr000", (wave, SR), {"label": "low"}), *_items("tr", 3)]
    write_audio_shards(data, "train-%06d.tar", items[:1] + items[2:], maxcount=100, subtype="FLOAT")
    write_audio_shards(data, "valid-%06d.tar", _items("va", 2), maxcount=100)
    write_audio_shards(data, "test-%06d.tar", _items("te", 2), maxcount=100)
    with pytest.raises(ShardError, match=r"train-000000\.tar, key 'tr000': its decoded \.wav audio holds 1 NaN"):
        evaluate(RaisingEncoder(), [_task(data)], _opts(tmp_path))
    assert not list((tmp_path / "cache").rglob("*.done.json"))


@pytest.mark.parametrize(
    "label, problem",
    [("purple", "unknown label 'purple'"), ({"nested": 1}, "unknown label {'nested': 1}")],
)
def test_an_unusable_label_stops_the_run_before_any_encoder_call(tmp_path, label, problem):
    task = _task(_data(tmp_path, test_label=label))
    with pytest.raises(ClipLabelError) as err:
        evaluate(RaisingEncoder(), [task], _opts(tmp_path))
    message = str(err.value)
    assert message.startswith("task faulty, split test, shard ") and "test-000000.tar, key 'te002': " in message
    assert problem in message
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.npz"))


def test_a_missing_label_field_names_its_clip(tmp_path):
    data = _data(tmp_path)
    write_audio_shards(data, "valid-%06d.tar", [("va000", (np.zeros(SR, np.float32), SR), {"other": 1})], maxcount=9)
    with pytest.raises(ClipLabelError, match=r"split valid, shard .*valid-000000\.tar, key 'va000': json has no key"):
        evaluate(RaisingEncoder(), [_task(data)], _opts(tmp_path))


ENCODER_FILE = """
import torch

class NaNOnOddEncoder(torch.nn.Module):
    sampling_rate, hop_size_in_ms, output_dim = 16000, 10, 4

    def forward(self, audio):
        frames = audio.unfold(-1, 160, 160)[..., :4].clone()
        if audio.shape[-1] == 12000:
            frames[:, 0, 0] = float("nan")
        return frames
"""


@pytest.mark.parametrize("fault", ["nan_embedding", "unknown_label"])
def test_the_cli_prints_one_error_line_and_exits_2(tmp_path, fault):
    data = _data(tmp_path, test_label="purple" if fault == "unknown_label" else None)
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "faulty.json").write_text(json.dumps(_task(data).to_dict()))
    (tmp_path / "enc.py").write_text(ENCODER_FILE)
    done = subprocess.run(
        [sys.executable, "-m", "xbench", "run", "--encoder", str(tmp_path / "enc.py"), "--tasks", "faulty",
         "--tasks-dir", str(tasks_dir), "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out"),
         "--bootstrap", "10"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    errors = re.findall(r"error: (.*)", done.stderr)  # the progress bar aside, one line
    assert len(errors) == 1 and errors[0].startswith("task faulty, split test, shard "), done.stderr
    assert "key 'te002'" in errors[0] and "Traceback" not in done.stderr
    assert ("NaN/Inf" if fault == "nan_embedding" else "unknown label 'purple'") in errors[0]
    assert not list((tmp_path / "out").rglob("faulty@v1.json"))
