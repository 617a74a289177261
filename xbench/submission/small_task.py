"""The small synthetic task ``xbench verify-submission`` runs a submission on: three tones in noise."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TASK_NAME = "verify_tones"


def build_small_task(folder: Path, seed: int = 0) -> Path:
    """A 3-class tone task (24 train / 9 valid / 9 test clips, 16 kHz) and its declaration; returns tasks dir."""
    import numpy as np

    from xbench.data.writer import write_audio_shards
    from xbench.taskspec.config import LabelSpec, TaskConfig

    sr, freqs = 16000, {"low": 300.0, "mid": 900.0, "high": 2500.0}
    classes = tuple(freqs)

    def items(split_seed: int, n: int, prefix: str) -> Iterable[tuple[str, tuple[Any, int], dict[str, str]]]:
        rng = np.random.default_rng(split_seed)
        for i in range(n):
            label = classes[i % 3]
            t = np.arange(int(rng.uniform(0.6, 1.2) * sr)) / sr
            x = 0.3 * np.sin(2 * np.pi * freqs[label] * rng.uniform(0.9, 1.1) * t)
            yield (
                f"{prefix}{i:03d}",
                ((x + 0.05 * rng.standard_normal(t.size)).astype(np.float32), sr),
                {"label": label},
            )

    data = folder / "data"
    for split, n, s in (("train", 24, seed), ("valid", 9, seed + 1), ("test", 9, seed + 2)):
        write_audio_shards(data, f"verify_{split}-%06d.tar", items(s, n, split[:2]), maxcount=100)
    task = TaskConfig(
        name=TASK_NAME,
        domain="sound",
        labels=LabelSpec("class", "label", classes=classes),
        output_dim=3,
        train_split="verify_train",
        valid_split="verify_valid",
        test_split="verify_test",
        data_dir=str(data),
        eval_weight=9,
        epochs=2,
        batch_size_encode=4,
    )
    tasks = folder / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    (tasks / f"{TASK_NAME}.json").write_text(json.dumps(task.to_dict()))
    return tasks
