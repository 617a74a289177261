"""``xbench compare``: predictions files built directly, paired bootstrap intervals, refusals, CLI."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xbench.cli import main
from xbench.probes.linear import ProbeData
from xbench.report.compare import (
    CompareError,
    Predictions,
    compare_runs,
    paired_difference,
    predictions_path,
    write_predictions,
)
from xbench.scoring.metrics import mean_average_precision, segment_f1


def _task(name, metric="accuracy", task_type="clip", **kw):
    return SimpleNamespace(name=name, metric=metric, task_type=task_type, metric_args=kw)


def _one_hot_scores(pred, classes):
    scores = np.zeros((len(pred), classes), dtype=np.float32)
    scores[np.arange(len(pred)), pred] = 1.0
    return scores


def _write_run(root, slug, task, folds, preds, targets, protocol="xbench", weight=100.0, private=False):
    """A result JSON + predictions.npz for one clip accuracy task; ``preds``/``targets``: {fold: [N] ints}."""
    folder = root / slug / protocol
    folder.mkdir(parents=True, exist_ok=True)
    keys = {f: [f"item{f}_{i}" for i in range(len(targets[f]))] for f in folds}
    tests = {
        "knn": {
            f: (_one_hot_scores(preds[f], 3), ProbeData(torch.zeros(len(targets[f]), 2), torch.tensor(targets[f])))
            for f in folds
        }
    }
    accs = [float(np.mean(np.asarray(preds[f]) == np.asarray(targets[f]))) for f in folds]
    result = {
        "task": task.name,
        "protocol": protocol,
        "task_version": 1,
        "task_fingerprint": "fp-" + task.name,
        "encoder_slug": slug,
        "weight": weight,
        "private": private,
        "seed": 0,
        "tracks": {"knn": {"metric": "accuracy", "raw": np.mean(accs), "score": np.mean(accs), "ci95": [0, 1]}},
    }
    path = folder / f"{task.name}@v1.json"
    path.write_text(json.dumps(result))
    write_predictions(predictions_path(path), task, 40.0, keys, tests)
    return folder


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    targets = rng.integers(0, 3, n)
    wrong = (targets + 1) % 3
    # "clear": A right on 60 %, B on 95 % of the items
    a_clear = np.where(rng.random(n) < 0.6, targets, wrong)
    b_clear = np.where(rng.random(n) < 0.95, targets, wrong)
    # "tie": B equals A except for two flipped items (one gained, one lost)
    a_tie = np.where(rng.random(n) < 0.7, targets, wrong)
    b_tie = a_tie.copy()
    right, bad = np.flatnonzero(a_tie == targets)[0], np.flatnonzero(a_tie != targets)[0]
    b_tie[right], b_tie[bad] = wrong[right], targets[bad]
    # k-fold task: two folds of 50
    t2 = {"0": targets[:50], "1": targets[50:100]}
    a2 = {"0": np.where(rng.random(50) < 0.5, t2["0"], wrong[:50]), "1": t2["1"].copy()}
    b2 = {"0": t2["0"].copy(), "1": t2["1"].copy()}
    for slug, clear, tie, kfold in (("EncA-1", a_clear, a_tie, a2), ("EncB-2", b_clear, b_tie, b2)):
        _write_run(tmp_path, slug, _task("clear"), [""], {"": clear}, {"": targets})
        _write_run(tmp_path, slug, _task("tie"), [""], {"": tie}, {"": targets}, private=True)
        _write_run(tmp_path, slug, _task("kfold"), ["0", "1"], kfold, t2, weight=50.0)
    return tmp_path


def test_paired_intervals_flag_real_differences_and_noise(runs):
    result = compare_runs(runs / "EncA-1" / "xbench", runs / "EncB-2" / "xbench", rounds=300)
    by_task = {d.task: d for d in result.tasks}
    assert set(by_task) == {"clear", "tie", "kfold"}
    clear, tie, kfold = by_task["clear"], by_task["tie"], by_task["kfold"]
    assert clear.verdict == "B better" and clear.ci_low > 0.2
    assert clear.diff == pytest.approx(clear.score_b - clear.score_a)  # paired point = difference of the runs
    assert tie.diff == 0.0 and tie.verdict == "within noise"
    # paired: only the two differing items move the difference (±k/200 for k draws of them), far tighter
    # than one score's own interval (about ±0.06 at 0.72 on 200 items)
    assert -0.03 <= tie.ci_low <= 0 <= tie.ci_high <= 0.03
    assert kfold.verdict == "B better" and kfold.items == 100
    assert kfold.diff == pytest.approx(kfold.score_b - kfold.score_a)
    averages = {(r["track"], r["group"]): r for r in result.averages}
    want = (clear.diff * 100 + tie.diff * 100 + kfold.diff * 50) / 250
    assert averages[("knn", "all")]["diff"] == pytest.approx(want)
    assert averages[("knn", "public")]["tasks"] == 2  # "tie" is private
    assert averages[("knn", "all")]["verdict"] == "B better"
    assert "within noise" in result.text()


def test_refuses_different_test_items_and_protocols(tmp_path):
    targets = np.array([0, 1, 2, 0])
    a = _write_run(tmp_path, "A-1", _task("t"), [""], {"": targets}, {"": targets})
    b = _write_run(tmp_path, "B-1", _task("t"), [""], {"": targets[:3]}, {"": targets[:3]})
    with pytest.raises(CompareError, match="same test items"):
        compare_runs(a, b, rounds=10)
    c = _write_run(tmp_path, "C-1", _task("t"), [""], {"": targets}, {"": targets}, protocol="xares")
    with pytest.raises(CompareError, match="protocols"):
        compare_runs(a, c, rounds=10)
    with pytest.raises(CompareError, match="several runs"):
        compare_runs(tmp_path, a, rounds=10)


def test_without_predictions_reports_no_interval(runs):
    for p in (runs / "EncB-2").rglob("clear@v1.predictions.npz"):
        p.unlink()
    result = compare_runs(runs / "EncA-1", runs / "EncB-2", rounds=50)
    clear = next(d for d in result.tasks if d.task == "clear")
    assert clear.verdict == "no interval" and "no predictions" in clear.note
    assert not np.isfinite(clear.ci_low)


def test_other_metrics_recompute_from_the_file(tmp_path):
    rng = np.random.default_rng(1)
    # multi-label mAP from scores
    targets = (rng.random((40, 4)) < 0.4).astype(np.float32)
    targets[0] = 1  # every class has a positive
    scores = targets + rng.normal(0, 0.8, targets.shape).astype(np.float32)
    task = _task("ml", metric="mAP")
    path = write_predictions(
        tmp_path / "ml.predictions.npz",
        task,
        40.0,
        {"": [f"k{i}" for i in range(40)]},
        {"mlp": {"": (scores, ProbeData(torch.zeros(40, 2), torch.from_numpy(targets)))}},
    )
    pred = Predictions.read(path)
    assert pred.metric("mlp", np.arange(40)) == pytest.approx(mean_average_precision(scores, targets))
    # frame-level segment F1 from stored binary predictions
    logits = [rng.normal(0, 1, (30 + i, 3)).astype(np.float32) for i in range(6)]
    frame_targets = [(rng.random(x.shape) < 0.3).astype(np.float32) for x in logits]
    ftask = _task("frames", metric="segmentf1_macro", task_type="frame", segment_length_in_s=0.2)
    data = ProbeData([torch.zeros(len(x), 2) for x in logits], [torch.from_numpy(t) for t in frame_targets])
    fpath = write_predictions(
        tmp_path / "frames.predictions.npz",
        ftask,
        40.0,
        {"": [f"c{i}" for i in range(6)]},
        {"mlp": {"": (logits, data)}},
    )
    fpred = Predictions.read(fpath)
    assert fpred.metric("mlp", np.arange(6)) == pytest.approx(segment_f1(logits, frame_targets, 40.0, 0.2, "macro"))
    # a file compared with itself: zero difference, zero-width interval
    diff, lo, hi, items, _ = paired_difference(fpred, fpred, "mlp", rounds=20)
    assert (diff, lo, hi, items) == (0.0, 0.0, 0.0, 6)


def test_cli_compare(runs, tmp_path, capsys):
    out = tmp_path / "cmp.csv"
    assert main(["compare", str(runs / "EncA-1"), str(runs / "EncB-2"), "--bootstrap", "50", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "B better" in text and "within noise" in text and "weighted average" in text
    assert out.read_text().splitlines()[0].startswith("task,track,metric")
    assert main(["compare", str(runs), str(runs / "EncB-2")]) == 2
    assert "several runs" in capsys.readouterr().err
