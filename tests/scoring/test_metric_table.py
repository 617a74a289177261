"""The metric table: its shape, EER on known cases, task bounds honoured everywhere, a metric added through it."""

import subprocess
import sys
from statistics import NormalDist

import numpy as np
import pytest
import torch

import xbench.taskspec.config as config
from xbench.probes.linear import ProbeData
from xbench.report.compare import CompareError, Predictions, paired_difference, write_predictions
from xbench.scoring.metrics import (
    CLIP_METRICS,
    INPUTS,
    METRICS,
    Metric,
    equal_error_rate,
    get_metric,
    mean_average_precision,
    register_metric,
    segment_f1,
)
from xbench.taskspec.config import LabelSpec, TaskConfig, TaskConfigError
from xbench.taskspec.registry import load_tasks

# the defaults xbench scored with before the table existed (bounds, higher_is_better): unchanged
PREVIOUS_DEFAULTS = {
    "accuracy": ((0.0, 1.0), True),
    "mAP": ((0.0, 1.0), True),
    "frame_mAP": ((0.0, 1.0), True),
    "segmentf1_macro": ((0.0, 1.0), True),
    "segmentf1_micro": ((0.0, 1.0), True),
    "recallatk_r1": ((0.0, 1.0), True),
    "WER": ((0.0, 1.0), False),
    "WER_inv": ((0.0, 1.0), True),
    "EER": ((0.0, 1.0), False),
    "MAE": (None, False),
    "MSE": (None, False),
}


def test_table_shape_and_defaults():
    assert config.METRICS is METRICS  # task validation reads the same table
    assert {name: (m.bounds, m.higher_is_better) for name, m in METRICS.items()} == PREVIOUS_DEFAULTS
    for name, m in METRICS.items():
        assert m.name == name and callable(m.fn) and m.inputs in INPUTS and m.description
    assert set(CLIP_METRICS) == {"accuracy", "mAP", "EER", "MAE", "MSE"}
    assert CLIP_METRICS["mAP"] is mean_average_precision and "segmentf1_macro" not in CLIP_METRICS
    with pytest.raises(KeyError, match="unknown metric 'f2'.*accuracy"):
        get_metric("f2")
    with pytest.raises(ValueError, match="already registered"):
        register_metric(METRICS["accuracy"])
    with pytest.raises(ValueError, match="inputs"):
        Metric("x", len, "pixels", (0, 1), True)
    with pytest.raises(ValueError, match="lo < hi"):
        Metric("x", len, "scores", (1, 1), True)


def test_every_task_scores_as_before():
    raws = [-0.2, 0.0, 0.37, 0.5, 1.0, 1.7]
    for task in load_tasks().values():
        bounds, higher = PREVIOUS_DEFAULTS[task.metric]
        lo, hi = task.metric_bounds
        assert ((lo, hi), task.higher_is_better) == (bounds, higher), task.name
        expected = [min(1.0, max(0.0, r if higher else 1.0 - r)) for r in raws]
        assert [task.normalised_score(r) for r in raws] == pytest.approx(expected, abs=0), task.name


def test_declaring_tasks_does_not_import_torch():
    code = "import sys, xbench.taskspec.config, xbench.scoring.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_table_functions_by_inputs():
    rng = np.random.default_rng(0)
    logits = [rng.normal(0, 2, (20 + i, 3)) for i in range(4)]
    targets = [(rng.random(x.shape) < 0.3).astype(np.float32) for x in logits]
    args = {"hop_size_in_ms": 40.0, "segment_length_in_s": 0.2}
    for average in ("macro", "micro"):
        got = METRICS[f"segmentf1_{average}"].fn(logits, targets, **args)
        assert got == segment_f1(logits, targets, 40.0, 0.2, average)
    flat = METRICS["frame_mAP"].fn(logits, targets, **args)
    assert flat == mean_average_precision(np.concatenate(logits), np.concatenate(targets))
    assert METRICS["WER_inv"].fn(["a b c"], ["a x c d e"]) == 0.0  # WER 4/3, clamped
    assert METRICS["WER"].fn(["a b c d"], ["a b c"]) == 0.25


# -- EER ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("negatives", "positives", "eer"),
    [
        ([0.1, 0.2, 0.3], [0.7, 0.8], 0.0),  # separated
        ([0.7, 0.8], [0.1, 0.2, 0.3], 1.0),  # inverted
        ([0.5, 0.5, 0.5], [0.5, 0.5], 0.5),  # uninformative: the diagonal
        # a vertical ROC step at FPR 1/3: FNR falls 1 -> 0 there, crossing FNR = FPR at 1/3
        # (the ASVspoof toolkits' nearest-threshold mean gives (0 + 1/3) / 2 = 1/6 here)
        ([0.1, 0.2, 0.3], [0.25], 1 / 3),
        # a tie between a negative and a positive: the diagonal ROC segment (0, .5) -> (.5, 1) crosses at .25
        ([0.1, 0.5], [0.5, 0.9], 0.25),
        ([1, 2, 3, 5], [4, 6, 7, 8], 0.25),  # one swapped pair of four: a ROC vertex on FNR = FPR
        # FNR - FPR changes sign on the diagonal from (FPR 1/4, TPR 1/2) to (2/4, 2/2) after a tie at 0.4
        ([0.1, 0.2, 0.4, 0.9], [0.4, 0.95], 1 / 3),
    ],
)
def test_eer_known_cases(negatives, positives, eer):
    scores = np.array([*negatives, *positives], dtype=np.float64)
    targets = np.array([0] * len(negatives) + [1] * len(positives))
    assert equal_error_rate(scores, targets) == pytest.approx(eer, abs=1e-12)
    # invariant to a monotone transform, to the order of the items and to which class is "positive"
    perm = np.random.default_rng(0).permutation(len(scores))
    assert equal_error_rate(np.exp(3 * scores[perm]), targets[perm]) == pytest.approx(eer, abs=1e-12)
    assert equal_error_rate(-scores, 1 - targets) == pytest.approx(eer, abs=1e-12)


def test_eer_of_two_gaussians_and_of_probe_logits():
    rng = np.random.default_rng(0)
    n = 20000
    scores = np.concatenate([rng.normal(0, 1, n), rng.normal(2, 1, n)])  # d' = 2
    targets = np.repeat([0, 1], n)
    theory = NormalDist().cdf(-1.0)  # 0.15866
    assert equal_error_rate(scores, targets) == pytest.approx(theory, abs=0.006)
    # a 2-way probe's logits [N, 2] are scored by logit(class 1) - logit(class 0), not by column 1 alone
    shift = rng.normal(0, 5, 2 * n)
    logits = np.stack([shift, shift + scores], axis=1)
    assert equal_error_rate(logits, targets) == pytest.approx(equal_error_rate(scores, targets), abs=1e-12)
    assert abs(equal_error_rate(logits[:, 1], targets) - theory) > 0.05
    assert CLIP_METRICS["EER"](torch.from_numpy(logits), torch.from_numpy(targets)) == equal_error_rate(scores, targets)


def test_eer_refuses_undefined_inputs():
    with pytest.raises(ValueError, match="both classes"):
        equal_error_rate(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValueError, match="shape"):
        equal_error_rate(np.zeros((4, 3)), np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="0/1"):
        equal_error_rate(np.zeros(3), np.array([0, 1, 2]))


# -- a task's own bounds, everywhere -----------------------------------------------------------------


def _toy(name="toy", **over):
    kw = dict(name=name, domain="sound", labels=LabelSpec("index", "y"), output_dim=3)
    return TaskConfig(**{**kw, **over})


def _predictions(tmp_path, task, tag, outputs, targets):
    n = len(targets)
    data = ProbeData(torch.zeros(n, 2), torch.as_tensor(targets))
    path = tmp_path / f"{tag}.predictions.npz"
    write_predictions(path, task, 40.0, {"": [f"k{i}" for i in range(n)]}, {"mlp": {"": (outputs, data)}})
    return Predictions.read(path)


def test_compare_honours_the_tasks_own_bounds(tmp_path):
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, 100)
    wrong = (targets + 1) % 3
    pred_a = np.where(np.arange(100) < 70, targets, wrong)  # accuracy 0.70
    pred_b = np.where(np.arange(100) < 90, targets, wrong)  # accuracy 0.90
    onehot = np.eye(3, dtype=np.float32)
    task = _toy(metric_bounds=(0.5, 1.0))  # chance-level floor: accuracy 0.5 scores 0
    a = _predictions(tmp_path, task, "a", onehot[pred_a], targets)
    b = _predictions(tmp_path, task, "b", onehot[pred_b], targets)
    assert a.normalisation("mlp") == ((0.5, 1.0), True)
    diff, lo, hi, items, _ = paired_difference(a, b, "mlp", rounds=50)
    assert diff == pytest.approx(task.normalised_score(0.9) - task.normalised_score(0.7)) == pytest.approx(0.4)
    assert items == 100 and lo <= diff <= hi  # with the default (0, 1) bounds the difference would be 0.2
    # a file written before bounds were recorded: the metric table's defaults
    for key in ("bounds_mlp", "higher_mlp"):
        del a.arrays[key]
    assert a.normalisation("mlp") == ((0.0, 1.0), True)
    with pytest.raises(CompareError, match="normalise the metric differently"):
        paired_difference(a, b, "mlp", rounds=5)

    # MSE has no default bounds: only the task's own make it comparable
    mse = _toy("reg", labels=LabelSpec("index", "y"), output_dim=1, metric="MSE", metric_bounds=(0.0, 4.0))
    y = rng.integers(0, 5, 60)  # integer targets: clip targets are stored as class indices (int64)
    ra = _predictions(tmp_path, mse, "ra", (y + 1.0)[:, None], y)  # MSE 1
    rb = _predictions(tmp_path, mse, "rb", (y + 0.5)[:, None], y)  # MSE 0.25
    diff, *_ = paired_difference(ra, rb, "mlp", rounds=20)
    assert diff == pytest.approx(mse.normalised_score(0.25) - mse.normalised_score(1.0)) == pytest.approx(0.1875)


# -- a new metric through the table alone ------------------------------------------------------------

DECLARATION = '''
from sklearn.metrics import matthews_corrcoef

from xbench.scoring.metrics import METRICS, Metric, register_metric
from xbench.taskspec.config import LabelSpec, TaskConfig

if "mcc" not in METRICS:
    register_metric(
        Metric("mcc", lambda s, t: float(matthews_corrcoef(t, s.argmax(-1))), "scores", (-1.0, 1.0), True, "MCC")
    )

TASK = TaskConfig(name="toy_mcc", domain="sound", labels=LabelSpec("index", "y"), output_dim=3, metric="mcc")
'''


@pytest.fixture
def mcc_dir(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "toy_mcc.py").write_text(DECLARATION)
    yield folder
    METRICS.pop("mcc", None)


def test_a_new_metric_through_the_table_alone(mcc_dir, tmp_path):
    with pytest.raises(TaskConfigError, match="field 'metric'"):
        _toy(metric="mcc")  # not registered yet
    task = load_tasks(mcc_dir)["toy_mcc"]  # the declaration file registers the metric, then uses it
    assert (task.metric_bounds, task.higher_is_better) == ((-1.0, 1.0), True)
    assert [task.normalised_score(r) for r in (-1.0, 0.0, 0.5, 1.0)] == pytest.approx([0.0, 0.5, 0.75, 1.0])
    assert "mcc" in CLIP_METRICS  # the run's clip scorer and compare find it there
    targets = np.array([0, 1, 2, 0, 1, 2])
    right = np.eye(3, dtype=np.float32)[targets]
    swapped = np.eye(3, dtype=np.float32)[(targets + 1) % 3]
    assert CLIP_METRICS["mcc"](right, targets) == pytest.approx(1.0)
    a = _predictions(tmp_path, task, "mcc_a", swapped, targets)
    b = _predictions(tmp_path, task, "mcc_b", right, targets)
    assert a.metric("mlp", np.arange(6)) == pytest.approx(-0.5)  # every item off by one class
    diff, *_ = paired_difference(a, b, "mlp", rounds=10)
    assert diff == pytest.approx(task.normalised_score(1.0) - task.normalised_score(-0.5)) == pytest.approx(0.75)


@pytest.mark.parametrize("average", ["macro", "micro"])
def test_segment_f1_from_summed_counts_equals_sklearn_on_the_pooled_segments(average):
    """Summing per-clip segment counts over any multiset of clips gives sklearn's F1 of those clips' segments,
    including classes never present nor predicted (F1 0, as zero_division=0)."""
    from xbench.scoring.metrics import f1_from_counts, segment_counts, segment_f1

    rng = np.random.default_rng(3)
    lengths = rng.integers(2, 30, 40)
    targets = [(rng.random((t, 5)) < 0.15).astype(np.float32) for t in lengths]
    for t in targets:
        t[:, 4] = 0  # a class never present
    logits = [rng.normal(-1.0, 1.5, (t, 5)) for t in lengths]
    logits[0][:, 4] = -9.0
    counts = segment_counts(logits, targets, 40.0, 0.2)
    assert counts.shape == (40, 5, 3)
    for pick in (np.arange(40), rng.integers(0, 40, 40), np.array([3, 3, 7])):
        want = segment_f1([logits[i] for i in pick], [targets[i] for i in pick], 40.0, 0.2, average)
        assert float(f1_from_counts(counts[pick].sum(0), average)) == pytest.approx(want, abs=1e-12)
