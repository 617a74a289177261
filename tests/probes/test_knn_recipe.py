"""The kNN track's recipe, pinned by hand-computed cases (no X-ARES needed).

X-ARES's ``KNN`` (``xares/trainer.py``): k = 10 neighbours from the train split only, neighbour weights
softmax(similarity / 0.07), class score = the sum of its neighbours' weights. Similarity: cosine under
the default protocol (train and test rows L2-normalised); under ``--protocol xares`` each test row is
L2-normalised but the train matrix is normalised per feature dimension (column) across the train set.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from xbench.embed.cache import read_unit
from xbench.encoders.baselines import LogMelEncoder
from xbench.pipeline.run import RunOptions, evaluate
from xbench.probes.knn import knn_scores

from conftest import clip_task, tone_items

T = 0.07


def _softmax(similarities: list[float]) -> np.ndarray:
    e = np.exp(np.array(similarities) / T)
    return e / e.sum()


def _reference(train, labels, test, classes, protocol, k=10):
    """The recipe written out with plain numpy (brute force, no faiss)."""
    train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
    axis = 1 if protocol == "xbench" else 0
    base = train / np.linalg.norm(train, axis=axis, keepdims=True)
    queries = test / np.linalg.norm(test, axis=1, keepdims=True)
    out = np.zeros((len(test), classes))
    for row, sims in enumerate(queries @ base.T):
        near = np.argsort(-sims, kind="stable")[:k]
        for j, w in zip(near, _softmax(list(sims[near])), strict=True):
            out[row, labels[j]] += w
    return out


# three train rows of different lengths, one query: every number below is written out by hand
TRAIN = np.array([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
LABELS = np.array([0, 1, 1])
QUERY = np.array([[2.0, 1.0]])


def test_default_protocol_is_a_cosine_vote():
    # cos(q, a) = 2/√5, cos(q, b) = 3/(3·√5) = 1/√5, cos(q, c) = 3/(√2·√5) = 3/√10
    w = _softmax([2 / math.sqrt(5), 1 / math.sqrt(5), 3 / math.sqrt(10)])
    expected = np.array([[w[0], w[1] + w[2]]])
    np.testing.assert_allclose(expected, [[0.3152126, 0.6847874]], atol=1e-7)  # the same numbers, written out
    np.testing.assert_allclose(knn_scores(TRAIN, LABELS, QUERY, 2), expected, atol=1e-6)
    np.testing.assert_allclose(knn_scores(TRAIN, LABELS, QUERY, 2, protocol="xbench"), expected, atol=1e-6)


def test_default_protocol_ignores_the_length_of_train_rows():
    plain = knn_scores(TRAIN, LABELS, QUERY, 2)
    scaled = TRAIN * np.array([[0.01], [50.0], [7.0]])
    np.testing.assert_allclose(knn_scores(scaled, LABELS, QUERY, 2), plain, atol=1e-6)
    np.testing.assert_allclose(knn_scores(TRAIN, LABELS, QUERY * 9.0, 2), plain, atol=1e-6)


def test_xares_protocol_normalises_train_columns():
    # column norms: √(1+0+1) = √2 and √(0+9+1) = √10; q̂ = (2, 1)/√5
    # a' = (1/√2, 0), b' = (0, 3/√10), c' = (1/√2, 1/√10)
    sims = [2 / math.sqrt(10), 3 / math.sqrt(50), (2 / math.sqrt(2) + 1 / math.sqrt(10)) / math.sqrt(5)]
    w = _softmax(sims)
    expected = np.array([[w[0], w[1] + w[2]]])
    np.testing.assert_allclose(expected, [[0.1163912, 0.8836088]], atol=1e-7)
    np.testing.assert_allclose(knn_scores(TRAIN, LABELS, QUERY, 2, protocol="xares"), expected, atol=1e-6)


def _fan():
    """12 train rows at 0°, 8°, ..., 88° with lengths 1..5; the two farthest from the query (80°, 88°) are
    class 2 and ten times longer. The query at 3°: its 10 nearest by angle are the rows at 0°..72°."""
    angles = np.radians(8.0 * np.arange(12))
    lengths = 1.0 + np.arange(12) % 5
    lengths[10:] = 10.0 * lengths[10:]
    train = lengths[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.array([i % 2 for i in range(10)] + [2, 2])
    query = np.array([[math.cos(math.radians(3.0)), math.sin(math.radians(3.0))]])
    return train, labels, query


def test_ten_nearest_by_cosine_vote():
    train, labels, query = _fan()
    w = _softmax([math.cos(math.radians(8.0 * i - 3.0)) for i in range(10)])  # rows 0..9, in order
    expected = np.array([[w[0::2].sum(), w[1::2].sum(), 0.0]])
    got = knn_scores(train, labels, query, 3)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got[0, 2] == 0.0  # the 11th and 12th neighbours get no weight at all
    np.testing.assert_allclose(got, _reference(train, labels, query, 3, "xbench"), atol=1e-6)


def test_fewer_than_ten_train_rows_all_vote():
    train, labels, query = _fan()
    got = knn_scores(train[:4], labels[:4], query, 3)
    w = _softmax([math.cos(math.radians(8.0 * i - 3.0)) for i in range(4)])
    np.testing.assert_allclose(got, [[w[0] + w[2], w[1] + w[3], 0.0]], atol=1e-6)


def test_test_rows_never_vote():
    """Only the train rows are searched: a test row's scores do not depend on the other test rows."""
    rng = np.random.default_rng(0)
    train, labels = rng.standard_normal((30, 6)), rng.integers(0, 4, 30)
    test = rng.standard_normal((5, 6))
    test = np.concatenate([test, test + 1e-3])  # near-duplicates inside the test set
    for protocol in ("xbench", "xares"):
        together = knn_scores(train, labels, test, 4, protocol=protocol)
        alone = np.concatenate([knn_scores(train, labels, row[None], 4, protocol=protocol) for row in test])
        np.testing.assert_allclose(together, alone, atol=1e-6)


@pytest.mark.parametrize("protocol", ["xbench", "xares"])
@pytest.mark.parametrize("shift", [0.0, 4.0])
def test_random_cases_follow_the_written_out_recipe(protocol, shift):
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((5, 12)) * 2
    labels = rng.integers(0, 5, 80)
    train = centres[labels] + rng.standard_normal((80, 12)) * np.linspace(0.2, 3.0, 80)[:, None] + shift
    test = centres[rng.integers(0, 5, 25)] + rng.standard_normal((25, 12)) + shift
    got = knn_scores(train.astype(np.float32), labels, test.astype(np.float32), 5, protocol=protocol)
    np.testing.assert_allclose(got, _reference(train, labels, test, 5, protocol), atol=2e-5)


# -- end to end: the run's kNN searches the train split only ------------------------------------------------

FREQS = {"low": 300.0, "high": 1800.0}
CLASSES = tuple(FREQS)


def test_run_knn_uses_the_train_split_only(tmp_path):
    """The valid split holds the test clips themselves with the wrong labels: a kNN that also searched
    it would take each test clip's own copy (similarity 1) as its nearest neighbour."""
    labels = list(CLASSES) * 4
    tests = list(tone_items(1, labels, FREQS, "te"))
    other = {"low": "high", "high": "low"}
    flipped = [(f"va{key[2:]}", audio, {"label": other[meta["label"]]}) for key, audio, meta in tests]
    splits = {"tr": tone_items(0, list(CLASSES) * 10, FREQS, "tr"), "va": flipped, "te": tests}
    task = clip_task(tmp_path / "data", "knn_train_only", splits, CLASSES)
    opts = RunOptions(
        tracks=("knn",), cache_root=str(tmp_path / "cache"), output_dir=str(tmp_path / "out"), bootstrap_rounds=10,
        show_progress=False,
    )  # fmt: skip
    table = evaluate(LogMelEncoder(), [task], opts)
    (pred_file,) = (tmp_path / "out").rglob("*.predictions.npz")
    with np.load(pred_file) as z:
        keys, predicted = z["keys"].tolist(), z["knn_pred"]
    units = {split: read_unit(next((tmp_path / "cache").rglob(f"{split}/*.npz"))) for split in ("tr", "te")}
    train, test = units["tr"], units["te"]
    y_train = np.array([CLASSES.index(m["label"]) for m in train.meta])
    expected = _reference(train.pooled, y_train, test.pooled, 2, "xbench").argmax(1)
    assert keys == test.keys
    np.testing.assert_array_equal(predicted, expected)
    assert float(table.score.iloc[0]) == pytest.approx(np.mean(expected == [CLASSES.index(y) for y in labels]))
    assert float(table.score.iloc[0]) >= 0.75
