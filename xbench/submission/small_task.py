"""The small synthetic task ``xbench verify-submission`` runs a submission on: four tones in noise.

Sized so that a working encoder passes clearly and a broken one cannot: 60 training, 30 validation
and 60 test clips (0.5-1 s, 16 kHz) of four tones (±10 % in pitch) in white noise, a probe trained
for 10 epochs of batches of 8 at learning rate 0.01. The 64-band log-mel baseline scores 1.0 on both
tracks; an encoder whose output ignores the audio scores about chance (0.25). Verification fails
below :data:`SCORE_FLOOR` on either track.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TASK_NAME = "verify_tones"
SCORE_FLOOR = 0.6
TONES = {"low": 300.0, "mid": 700.0, "high": 1600.0, "top": 3500.0}
SPLITS = (("train", 60), ("valid", 30), ("test", 60))


def build_small_task(folder: Path, seed: int = 0) -> Path:
    """Write the task's shards and declaration under ``folder``; returns the tasks dir to load it from."""
    import numpy as np

    from xbench.data.writer import write_audio_shards
    from xbench.taskspec.config import LabelSpec, TaskConfig

    sr, classes = 16000, tuple(TONES)

    def items(split_seed: int, n: int, prefix: str) -> Iterable[tuple[str, tuple[Any, int], dict[str, str]]]:
        rng = np.random.default_rng(split_seed)
        for i in range(n):
            label = classes[i % len(classes)]
            t = np.arange(int(rng.uniform(0.5, 1.0) * sr)) / sr
            x = 0.3 * np.sin(2 * np.pi * TONES[label] * rng.uniform(0.9, 1.1) * t)
            wave = (x + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
            yield f"{prefix}{i:03d}", (wave, sr), {"label": label}

    data = folder / "data"
    for offset, (split, n) in enumerate(SPLITS):
        write_audio_shards(data, f"verify_{split}-%06d.tar", items(seed + offset, n, split[:2]), maxcount=1000)
    task = TaskConfig(
        name=TASK_NAME,
        domain="sound",
        labels=LabelSpec("class", "label", classes=classes),
        output_dim=len(classes),
        train_split="verify_train",
        valid_split="verify_valid",
        test_split="verify_test",
        data_dir=str(data),
        eval_weight=SPLITS[-1][1],
        epochs=10,
        batch_size_train=8,
        learning_rate=0.01,
    )
    tasks = folder / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    (tasks / f"{TASK_NAME}.json").write_text(json.dumps(task.to_dict()))
    return tasks


def small_task_scores(encoder: Any, tasks_dir: str | Path, work: str | Path, device: str = "cpu") -> dict[str, float]:
    """The score per track (knn, mlp) of ``encoder`` (a spec or an instance) on the task under ``tasks_dir``.

    ``work`` holds the run's cache and results. Raises what loading or running the encoder raises.
    """
    from xbench.encoder.contract import load_encoder
    from xbench.pipeline.run import RunOptions, evaluate
    from xbench.taskspec.registry import get_task

    frame = evaluate(
        load_encoder(encoder),
        [get_task(TASK_NAME, str(tasks_dir))],
        RunOptions(
            output_dir=str(Path(work) / "results"),
            cache_root=str(Path(work) / "cache"),
            device=device,
            bootstrap_rounds=20,
            show_progress=False,
        ),
    )
    return {r.track: round(float(r.score), 4) for r in frame.itertuples()}


def score_verdict(scores: dict[str, float]) -> tuple[bool, str]:
    """(every track at or above :data:`SCORE_FLOOR`, a line with both scores)."""
    shown = ", ".join(f"{track} {score:.3f}" for track, score in sorted(scores.items()))
    chance = 1 / len(TONES)
    ok = bool(scores) and all(score >= SCORE_FLOOR for score in scores.values())
    return ok, f"{shown or 'no scores'} (floor {SCORE_FLOOR}, chance {chance:.2f})"
