"""A frame-level (sound event detection) task end to end: frame labels built with the encoder's hop."""

import json

import numpy as np

from xbench.data.writer import write_audio_shards
from xbench.encoders.baselines import LogMelEncoder
from xbench.pipeline.run import RunOptions, evaluate
from xbench.taskspec.config import LabelSpec, TaskConfig
from xbench.taskspec.registry import get_task

SR = 16000
CLASSES = ("beep", "hum")


def _items(seed, n, prefix):
    """3 s clips with a 2 kHz beep and/or a 150 Hz hum at random times, labelled as events."""
    rng = np.random.default_rng(seed)
    t = np.arange(3 * SR) / SR
    for i in range(n):
        x = 0.02 * rng.standard_normal(t.size)
        events = []
        for name, freq in (("beep", 2000.0), ("hum", 150.0)):
            if rng.random() < 0.7:
                on = float(np.round(rng.uniform(0.0, 1.8), 2))
                off = float(np.round(on + rng.uniform(0.5, 1.2), 2))
                x += 0.3 * np.sin(2 * np.pi * freq * t) * ((t >= on) & (t < off))
                events.append({"onset": on, "offset": off, "label": name})
        yield f"{prefix}{i:03d}", (x.astype(np.float32), SR), events


def test_frame_task_scores_segment_f1(tmp_path):
    data = tmp_path / "data"
    write_audio_shards(data, "sed_train-%06d.tar", _items(0, 40, "tr"), maxcount=100)
    write_audio_shards(data, "sed_test-%06d.tar", _items(1, 16, "te"), maxcount=100)
    task = TaskConfig(
        name="toy_sed",
        domain="sound",
        task_type="frame",
        labels=LabelSpec("events", "label", classes=CLASSES, start_key="onset", end_key="offset", clip_seconds=3.0),
        output_dim=2,
        train_split="sed_train",
        valid_split="sed_test",
        test_split="sed_test",
        criterion="BCEWithLogitsLoss",
        metric="segmentf1_macro",
        metric_args={"segment_length_in_s": 0.5},
        do_knn=False,
        data_dir=str(data),
        eval_weight=16,
        epochs=15,
        learning_rate=1e-2,
        batch_size_train=8,
    )
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "toy_sed.json").write_text(json.dumps(task.to_dict()))
    opts = RunOptions(
        cache_root=str(tmp_path / "cache"), output_dir=str(tmp_path / "out"), bootstrap_rounds=30, show_progress=False
    )
    frame = evaluate(LogMelEncoder(), [get_task("toy_sed", tasks_dir)], opts)
    assert list(frame.track) == ["mlp"]  # no kNN for frame tasks
    row = frame.iloc[0]
    assert row.metric == "segmentf1_macro"
    assert row.raw > 0.8, row
    again = evaluate(
        LogMelEncoder(),
        [get_task("toy_sed", tasks_dir)],
        RunOptions(
            cache_root=str(tmp_path / "cache"),
            output_dir=str(tmp_path / "out2"),
            bootstrap_rounds=30,
            show_progress=False,
        ),
    )
    assert again.raw.iloc[0] == row.raw
