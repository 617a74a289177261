import numpy as np
import pytest
import torch

from xbench.probes.knn import knn_scores
from xbench.scoring.metrics import accuracy, retrieval_recall_at_1, segment_f1, word_error_rate
from xbench.scoring.scores import ScoredTask, aggregate, bootstrap_interval, normalise

from conftest import require_oracle


def _clusters(seed=0, n=200, d=32, c=5, shift=None):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((c, d)) * 2
    y = rng.integers(0, c, n)
    x = centres[y] + rng.standard_normal((n, d))
    if shift is not None:
        x = x + shift  # a common offset: cosine and per-dimension normalisation now disagree
    return x.astype(np.float32), y


def test_knn_separates_clusters():
    x, y = _clusters()
    scores = knn_scores(x[:150], y[:150], x[150:], 5)
    assert accuracy(scores, y[150:]) > 0.95
    assert np.allclose(scores.sum(1), 1.0)


@pytest.mark.parametrize("shift", [None, 5.0])
def test_xares_protocol_equals_xares_package(shift):
    trainer = require_oracle("xares.trainer")
    x, y = _clusters(seed=1, n=300, d=24, c=7, shift=shift)
    ours = knn_scores(x[:200], y[:200], x[200:], 7, protocol="xares")
    ref = trainer.KNN(torch.from_numpy(x[:200]), torch.from_numpy(y[:200]), num_classes=7)(torch.from_numpy(x[200:]))
    np.testing.assert_allclose(ours, ref.numpy(), atol=1e-4)
    assert accuracy(ours, y[200:]) == accuracy(ref.numpy(), y[200:])


def test_protocols_differ_when_features_share_an_offset():
    x, y = _clusters(seed=2, shift=np.linspace(0, 20, 32))
    a = knn_scores(x[:150], y[:150], x[150:], 5, protocol="xbench")
    b = knn_scores(x[:150], y[:150], x[150:], 5, protocol="xares")
    assert not np.allclose(a, b)


def test_knn_errors_name_the_problem():
    x, y = _clusters()
    with pytest.raises(ValueError, match="unknown kNN protocol"):
        knn_scores(x, y, x, 5, protocol="dino")
    with pytest.raises(ValueError, match="train labels outside"):
        knn_scores(x, y + 10, x, 5)


@pytest.mark.parametrize(
    "raw, bounds, higher, expected",
    [(0.7, (0, 1), True, 0.7), (0.25, (0, 1), False, 0.75), (1.4, (0, 1), False, 0.0), (5.0, (0, 10), False, 0.5)],
)
def test_normalise(raw, bounds, higher, expected):
    assert normalise(raw, *bounds, higher_is_better=higher) == pytest.approx(expected)


def test_aggregate_public_private_domain_and_knn_dropout():
    items = [
        ScoredTask("a", "mlp", 0.8, 100, False, "speech"),
        ScoredTask("b", "mlp", 0.4, 300, False, "sound"),
        ScoredTask("c", "mlp", 1.0, 100, True, "sound"),
        ScoredTask("a", "knn", 0.6, 100, False, "speech"),
    ]
    rows = {(r["track"], r["group"]): r["score"] for r in aggregate(items)}
    assert rows[("mlp", "all")] == pytest.approx((80 + 120 + 100) / 500)
    assert rows[("mlp", "public")] == pytest.approx((80 + 120) / 400)
    assert rows[("mlp", "private")] == pytest.approx(1.0)
    assert rows[("mlp", "sound")] == pytest.approx((120 + 100) / 400)
    assert rows[("knn", "all")] == pytest.approx(0.6) and ("knn", "sound") not in rows
    with pytest.raises(ValueError, match="different protocols"):
        aggregate([items[0], ScoredTask("b", "mlp", 0.1, 1, protocol="xares")])


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    correct = rng.random(500) < 0.7
    lo, hi = bootstrap_interval(lambda idx: float(correct[idx].mean()), 500, rounds=300, seed=1)
    assert lo < correct.mean() < hi and hi - lo < 0.15
    assert (lo, hi) == bootstrap_interval(lambda idx: float(correct[idx].mean()), 500, rounds=300, seed=1)


def test_segment_f1_pools_segments():
    hop = 100.0  # ms -> 10 frames per 1 s segment
    target = np.zeros((25, 2))
    target[3, 0] = 1  # one active frame in segment 0 of class 0
    logits = np.full((25, 2), -5.0)
    logits[7, 0] = 5.0  # predicted at another frame of the same segment
    assert segment_f1([logits], [target], hop, 1.0, "micro") == pytest.approx(1.0)
    logits[15, 1] = 5.0  # a false positive in segment 1
    assert segment_f1([logits], [target], hop, 1.0, "micro") == pytest.approx(2 / 3)


def test_recall_and_wer():
    audio = np.repeat(np.eye(3), 2, axis=0)
    text = np.repeat(np.eye(3), 2, axis=0)
    assert retrieval_recall_at_1(audio, text, 2) == 1.0
    assert word_error_rate(["the cat sat"], ["The cat sat down"]) == pytest.approx(1 / 3)
    jiwer = require_oracle("jiwer")
    refs, hyps = ["a b c d", "hello world"], ["a x c", "hello there world"]
    assert word_error_rate(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps))
