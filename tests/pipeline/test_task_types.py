"""A new task type added from outside xbench: one task-type registration, one scorer, then `evaluate` end to end.

The toy type ``count`` regresses how many tone bursts a clip holds (labels of kind ``index``, no class
count), trains a LayerNorm + Linear(D, 1) probe with the shared probe loop and is scored by MAE.
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xbench.data.writer import write_audio_shards
from xbench.encoders.baselines import LogMelEncoder
from xbench.pipeline import scorers
from xbench.pipeline.run import RunOptions, evaluate
from xbench.pipeline.scorers import Scored, ScoreInput, register_scorer
from xbench.probes.linear import LinearProbe
from xbench.probes.loop import train_loop
from xbench.scoring.scores import bootstrap_interval
from xbench.taskspec import config
from xbench.taskspec.config import LabelSpec, TaskConfig, TaskConfigError, register_task_type

SR = 16000
CLIP_S, BURST_S = 1.2, 0.15


def _items(seed, n, prefix):
    """Clips with 0-3 bursts of a 1 kHz tone at random places in noise; the json says how many."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(CLIP_S * SR)) / SR
    for i in range(n):
        count = i % 4
        x = 0.05 * rng.standard_normal(t.size)
        for slot in rng.choice(round(CLIP_S / BURST_S), size=count, replace=False):
            on = slot * BURST_S
            x += 0.3 * np.sin(2 * np.pi * 1000.0 * rng.uniform(0.95, 1.05) * t) * ((t >= on) & (t < on + BURST_S))
        yield f"{prefix}{i:03d}", (x.astype(np.float32), SR), {"bursts": count}


def _xy(task, unit):
    x = torch.from_numpy(unit.pooled.astype(np.float32))
    y = torch.tensor([float(task.encode_label(m)) for m in unit.meta])
    return x, y


@torch.no_grad()
def _errors(model, x, y):
    model.eval()
    return (model(x).squeeze(-1) - y).abs().numpy().astype(np.float64)


def _train(task, x, y, vx, vy):
    """A LayerNorm + Linear(D, 1) regression probe, MSE loss, selected on the validation MAE."""
    settings = SimpleNamespace(
        epochs=task.epochs, learning_rate=task.learning_rate, valid_every=task.valid_every, seed=task.seed
    )
    return train_loop(
        "count probe",
        y,
        vy,
        lambda: LinearProbe(x.shape[1], 1),
        lambda gen: torch.randperm(len(y), generator=gen).split(task.batch_size_train),
        lambda model, idx: (torch.nn.functional.mse_loss(model(x[idx]).squeeze(-1), y[idx]), len(idx)),
        lambda model: -float(_errors(model, vx, vy).mean()),
        settings,
    ).model


def score_count(inp: ScoreInput) -> Scored:
    """MLP track of a ``count`` task: a regression probe per fold, MAE, 0-1 score and bootstrap interval."""
    task = inp.task
    folds, errors = [], {}
    for fold, *units in inp.folds():
        (x, y), (vx, vy), (tx, ty) = (_xy(task, u) for u in units)
        errors[fold] = _errors(_train(task, x, y, vx, vy), tx, ty)
        folds.append(float(errors[fold].mean()))
    raw = float(np.mean(folds))

    def resampled(draw):
        return float(np.mean([errors[f][idx].mean() for f, idx in draw.items()]))

    sizes = {f: len(e) for f, e in errors.items()}
    lo, hi = bootstrap_interval(resampled, sizes, rounds=inp.options.bootstrap_rounds, seed=task.seed)
    track = {
        "metric": task.metric,
        "raw": raw,
        "score": task.normalised_score(raw),
        "folds": folds,
        "ci95": sorted([task.normalised_score(lo), task.normalised_score(hi)]),
        "chance_mae": float(np.abs(ty.numpy() - y.mean().item()).mean()),
    }
    return Scored({"mlp": track})


@pytest.fixture
def registries(monkeypatch):
    """The task-type and scorer tables as they are, restored after the test."""
    monkeypatch.setattr(config, "TASK_TYPES", dict(config.TASK_TYPES))
    monkeypatch.setattr(scorers, "SCORERS", dict(scorers.SCORERS))


def _task(data, **kw):
    return TaskConfig(
        name="toy_bursts",
        domain="sound",
        task_type="count",
        labels=LabelSpec("index", "bursts"),
        train_split="bursts_train",
        valid_split="bursts_valid",
        test_split="bursts_test",
        data_dir=str(data),
        metric="MAE",
        metric_bounds=(0.0, 1.5),
        do_knn=False,
        epochs=40,
        learning_rate=3e-2,
        batch_size_train=8,
        batch_size_encode=8,
        eval_weight=10,
        **kw,
    )


def test_new_task_type_through_the_registries(tmp_path, registries):
    data = tmp_path / "data"
    write_audio_shards(data, "bursts_train-%06d.tar", _items(0, 64, "tr"), maxcount=32)
    write_audio_shards(data, "bursts_valid-%06d.tar", _items(1, 16, "va"), maxcount=100)
    write_audio_shards(data, "bursts_test-%06d.tar", _items(2, 24, "te"), maxcount=100)
    with pytest.raises(TaskConfigError, match="task_type.*'count' is not one of"):
        _task(data)

    register_task_type("count", ["index"], needs_output_dim=False)
    with pytest.raises(ValueError, match="already registered"):
        register_task_type("count", ["index"])
    with pytest.raises(TaskConfigError, match="kind 'text' does not fit task_type 'count'"):
        TaskConfig(**{**_task(data).to_dict(), "labels": LabelSpec("text", "bursts")})
    task = _task(data)
    opts = RunOptions(
        cache_root=str(tmp_path / "cache"), output_dir=str(tmp_path / "out"), bootstrap_rounds=100, show_progress=False
    )
    with pytest.raises(NotImplementedError, match="task_type 'count' is not supported"):
        evaluate(LogMelEncoder(), [task], opts)

    register_scorer("count", settings={"count_device": lambda o: o.device})(score_count)
    frame = evaluate(LogMelEncoder(), [task], opts)
    assert list(frame.track) == ["mlp"] and list(frame.metric) == ["MAE"] and frame.test_count.iloc[0] == 24
    row = frame.iloc[0]
    (path,) = (tmp_path / "out").rglob("toy_bursts@v1.json")
    result = json.loads(path.read_text())
    track = result["tracks"]["mlp"]
    assert row.raw < 0.4 * track["chance_mae"], (row.raw, track["chance_mae"])  # chance: predict the train mean
    assert row.score == pytest.approx(1 - row.raw / 1.5) and 0 < row.score < 1
    assert row.ci_low <= row.score <= row.ci_high and row.ci_low < row.ci_high
    settings = result["run_settings"]
    assert settings["count_device"] == "cpu" and settings["text_tokenizer"] is None and settings["asr"] is None
    assert not list(path.parent.glob("*.predictions.npz"))  # the scorer kept no per-item predictions

    # a rerun finds the saved result (same run settings) and returns the same row, leaving the file as it was
    written = path.stat().st_mtime_ns
    again = evaluate(LogMelEncoder(), [task], opts)
    assert path.stat().st_mtime_ns == written
    assert frame[["raw", "score", "ci_low", "ci_high"]].equals(again[["raw", "score", "ci_low", "ci_high"]])
