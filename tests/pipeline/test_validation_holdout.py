"""Model selection never sees test data under the default protocol.

X-ARES 0.1.3 selects the probe's best epoch on the test data of every k-fold task (the held-out fold is
also the validation split) and of tasks whose valid split is their test split (DESED, FSD18-Kaggle,
VoxLingua33, ...). The default protocol holds out a seeded tenth of the training files for validation
instead; ``--protocol xares`` keeps X-ARES's recipe; the kNN track (no selection) keeps the whole training
split.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from xbench.embed.cache import EmbeddedUnit, concat_units, subset_unit
from xbench.pipeline.run import RunOptions, run_settings
from xbench.pipeline.scorers import VALID_SHARE, ScoreInput, carve_validation, holds_out_validation
from xbench.taskspec.config import LabelSpec, TaskConfig

DIM = 3


def _unit(prefix: str, files: int, crops: int = 1, seed: int = 0) -> EmbeddedUnit:
    """``files`` source files of ``crops`` items each; item i has i + 1 frames of value (i, file, crop)."""
    rng = np.random.default_rng(seed)
    keys, sources, frames, crop_index = [], [], [], []
    for f in range(files):
        for c in range(crops):
            i = len(keys)
            keys.append(f"{prefix}{f:03d}" + (f"#{c}" if crops > 1 else ""))
            sources.append(f"{prefix}{f:03d}")
            crop_index.append(c)
            frames.append(np.tile(np.array([i, f, c], np.float32), (i % 4 + 1, 1)))
    lengths = [len(x) for x in frames]
    return EmbeddedUnit(
        keys=keys,
        source_keys=sources,
        crop_index=np.array(crop_index),
        num_samples=rng.integers(1000, 2000, len(keys)),
        meta=[{"label": "a" if i % 2 else "b", "i": i} for i in range(len(keys))],
        frames=np.concatenate(frames),
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        pooled=np.stack([x.mean(0) for x in frames]),
    )


def _task(**fields) -> TaskConfig:
    base = {
        "name": "holdout",
        "domain": "sound",
        "labels": LabelSpec("class", "label", classes=("a", "b")),
        "output_dim": 2,
        "eval_weight": 1,
        "data_dir": "/nonexistent",
    }
    return TaskConfig(**{**base, **fields})


KFOLD = {"k_fold_splits": (1, 2, 3), "audio_tar_name_of_split": {k: f"fold{k}-*.tar" for k in (1, 2, 3)}}


def _input(task: TaskConfig, protocol: str = "xbench", crops: int = 1) -> ScoreInput:
    names = [str(k) for k in task.k_fold_splits] if task.is_kfold else sorted({task.train_split, task.test_split})
    splits = {name: _unit(f"{name}-", 40, crops, seed=i) for i, name in enumerate(names)}
    return ScoreInput(task, splits, RunOptions(tracks=("mlp", "knn"), protocol=protocol), hop=40.0)


def test_subset_unit_keeps_each_items_frames_and_metadata():
    unit = _unit("x", 6, crops=2)
    idx = np.array([7, 0, 3])
    part = subset_unit(unit, idx)
    assert part.keys == [unit.keys[i] for i in idx] and part.meta == [unit.meta[i] for i in idx]
    for j, i in enumerate(idx):
        np.testing.assert_array_equal(part.clip_frames(j), unit.clip_frames(i))
    np.testing.assert_array_equal(part.pooled, unit.pooled[idx])
    assert part.offsets[-1] == len(part.frames) and subset_unit(unit, np.arange(0)).frames.shape == (0, DIM)


@pytest.mark.parametrize("crops", [1, 3])
def test_kfold_validation_is_held_out_of_the_training_folds(crops):
    inp = _input(_task(**KFOLD), crops=crops)
    draws = []
    for fold, train, valid, test in inp.folds():
        full = inp.full_train(fold)
        assert not set(valid.keys) & set(test.keys)  # selection never sees the round's test fold
        assert not set(valid.keys) & set(train.keys)
        assert sorted(train.keys + valid.keys) == sorted(full.keys)
        assert not set(valid.source_keys) & set(train.source_keys)  # a file's crops stay on one side
        files = len(set(full.source_keys))
        assert len(set(valid.source_keys)) == round(VALID_SHARE * files) == 8  # 2 training folds of 40 files
        draws.append(sorted(valid.keys))
    assert draws == [sorted(v.keys) for _, _, v, _ in inp.folds()]  # seeded: the same on every call
    assert len({tuple(d) for d in draws}) == 3


def test_xares_protocol_keeps_selection_on_the_test_fold():
    inp = _input(_task(**KFOLD), protocol="xares")
    for fold, train, valid, test in inp.folds():
        assert valid.keys == test.keys and train.keys == inp.full_train(fold).keys


def test_valid_equal_to_test_is_replaced_and_separate_splits_are_kept():
    same = _task(train_split="train", valid_split="test", test_split="test")
    (_, train, valid, test), = _input(same).folds()
    assert not set(valid.keys) & set(test.keys) and len(valid) == 4 and len(train) == 36
    own = _task(train_split="train", valid_split="train", test_split="test")  # a real valid split: untouched
    assert not holds_out_validation(own, RunOptions())
    everything = _task(train_split="all", valid_split="all", test_split="all")  # Subway broadcast: nothing to hold out
    assert not holds_out_validation(everything, RunOptions())


def test_run_settings_name_the_validation_so_old_results_are_not_reused():
    task = _task(**KFOLD)
    default = run_settings(task, "enc-0", RunOptions())["validation"]
    xares = run_settings(task, "enc-0", RunOptions(protocol="xares"))["validation"]
    assert default == f"train share {VALID_SHARE}" and xares == "valid split"
    plain = _task(train_split="train", valid_split="valid", test_split="test")
    assert run_settings(plain, "enc-0", RunOptions())["validation"] == "valid split"


def test_too_few_training_files_is_a_clear_error():
    with pytest.raises(ValueError, match="too few to hold out validation"):
        carve_validation(_unit("x", 1, crops=3), seed=0, index=0)
    joined = concat_units([_unit("a", 2), _unit("b", 3)])
    train, valid = carve_validation(joined, seed=0, index=0)
    assert len(valid) == 1 and len(train) == 4


def test_knn_keeps_the_whole_training_split(monkeypatch):
    """The kNN track selects nothing: holding out validation must not change it."""
    import xbench.pipeline.scorers as scorers

    seen = []
    real = scorers.knn_scores

    def spy(x_train, *args, **kwargs):
        seen.append(len(x_train))
        return real(x_train, *args, **kwargs)

    monkeypatch.setattr(scorers, "knn_scores", spy)
    monkeypatch.setattr(scorers, "_mlp_outputs", lambda data, dim, *a, **k: [np.zeros((len(data[2].targets), dim))])
    inp = _input(replace(_task(**KFOLD), epochs=1))
    scorers.get_scorer(inp.task).score(inp)
    assert seen == [80, 80, 80]
