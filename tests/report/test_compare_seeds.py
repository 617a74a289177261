"""``xbench compare`` on tracks averaged over probe seeds: pairing by seed and item, seed noise, old files."""

import json

import numpy as np
import pytest
import torch

from xbench.probes.linear import ProbeData
from xbench.report.compare import (
    FORMAT,
    Predictions,
    compare_runs,
    paired_difference,
    predictions_path,
    write_predictions,
)

N = 400
RNG = np.random.default_rng(0)
TARGETS = RNG.integers(0, 3, N)
DIFFICULTY = RNG.random(N)  # the same encoder: the same items are hard for every probe seed


class _Task:
    name, metric, task_type, metric_args = "skills", "accuracy", "clip", {}


def _scores(skill):
    """One seed's class scores: right exactly on the items easier than its skill (nested across seeds)."""
    pred = np.where(DIFFICULTY < skill, TARGETS, (TARGETS + 1) % 3)
    scores = np.zeros((N, 3), dtype=np.float32)
    scores[np.arange(N), pred] = 1.0
    return scores


def _run(root, slug, seeds, skills):
    folder = root / slug / "xbench"
    folder.mkdir(parents=True, exist_ok=True)
    per_seed = [_scores(s) for s in skills]
    accs = [float((p.argmax(1) == TARGETS).mean()) for p in per_seed]
    result = {
        "task": "skills",
        "task_fingerprint": "fp",
        "encoder_slug": slug,
        "weight": N,
        "seed": 42,
        "tracks": {
            "mlp": {
                "metric": "accuracy",
                "raw": float(np.mean(accs)),
                "score": float(np.mean(accs)),
                "ci95": [0.0, 1.0],
                "seeds": {"probe_seeds": seeds, "raw": accs, "score": accs},
            }
        },
    }
    path = folder / "skills@v1.json"
    path.write_text(json.dumps(result))
    data = ProbeData(torch.zeros(N, 2), torch.from_numpy(TARGETS))
    write_predictions(predictions_path(path), _Task(), 40.0, {"": [f"k{i}" for i in range(N)]},
                      {"mlp": {"": (per_seed, data)}}, seeds={"mlp": seeds})
    return folder


def _verdict(a, b):
    (d,) = compare_runs(a, b, rounds=400).tasks
    return d


def test_same_encoder_with_other_probe_seeds_is_within_noise(tmp_path):
    """Probe seeds of one encoder differ in skill by up to 0.12: seed noise, not a better encoder."""
    a = _run(tmp_path, "Enc-1", [42, 43, 44, 45, 46], [0.62, 0.70, 0.66, 0.74, 0.68])
    b = _run(tmp_path, "Enc-2", [47, 48, 49, 50, 51], [0.74, 0.64, 0.70, 0.66, 0.72])
    d = _verdict(a, b)
    assert d.verdict == "within noise" and "seeds differ" in d.note
    assert d.diff == pytest.approx(d.score_b - d.score_a) and d.ci_low < 0 < d.ci_high
    # one seed each, items resampled only (the comparison before seeds were averaged): "B better"
    a1 = _run(tmp_path / "one", "Enc-1", [42], [0.62])
    b1 = _run(tmp_path / "one", "Enc-2", [47], [0.74])
    assert _verdict(a1, b1).verdict == "B better"
    # a real difference still shows through the seed noise
    c = _run(tmp_path, "Enc-3", [42, 43, 44, 45, 46], [0.82, 0.90, 0.86, 0.94, 0.88])
    assert _verdict(a, c).verdict == "B better"


def test_runs_with_the_same_seeds_are_paired_by_seed(tmp_path):
    skills = [0.5, 0.9, 0.6, 0.8, 0.7]
    a = Predictions.read(predictions_path(_run(tmp_path, "Enc-1", [1, 2, 3, 4, 5], skills) / "skills@v1.json"))
    b = Predictions.read(predictions_path(_run(tmp_path, "Enc-2", [1, 2, 3, 4, 5], skills) / "skills@v1.json"))
    # the same seeds drawn for both runs, seed by seed: identical runs differ by exactly 0 in every round
    assert paired_difference(a, b, "mlp", rounds=200)[:3] == (0.0, 0.0, 0.0)
    c = Predictions.read(predictions_path(_run(tmp_path, "Enc-3", [6, 7, 8, 9, 10], skills) / "skills@v1.json"))
    diff, lo, hi, _, _ = paired_difference(a, c, "mlp", rounds=200)  # other seeds: drawn independently
    assert diff == 0.0 and lo < -0.05 and hi > 0.05
    assert a.seeds("mlp") == [1, 2, 3, 4, 5] and a.arrays["mlp_pred"].shape == (5, N)
    assert [a.metric("mlp", np.arange(N), s) for s in range(5)] == pytest.approx(
        [float((DIFFICULTY < s).mean()) for s in skills]
    )


def test_version_1_files_read_as_one_seed(tmp_path):
    path = tmp_path / "old.predictions.npz"
    pred = np.where(DIFFICULTY < 0.7, TARGETS, (TARGETS + 1) % 3).astype(np.int32)
    np.savez_compressed(
        path,
        format=np.array("xbench-predictions/1"),
        task=np.array("skills"),
        keys=np.array([f"k{i}" for i in range(N)]),
        folds=np.array([""] * N),
        targets=TARGETS.astype(np.int64),
        metric_mlp=np.array("accuracy"),
        mlp_pred=pred,
    )
    old = Predictions.read(path)
    assert FORMAT == "xbench-predictions/2"
    assert old.seeds("mlp") is None and old.n_seeds("mlp") == 1
    assert old.metric("mlp", np.arange(N)) == pytest.approx((DIFFICULTY < 0.7).mean())
    assert paired_difference(old, old, "mlp", rounds=50)[:3] == (0.0, 0.0, 0.0)
