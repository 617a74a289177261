"""Scores pinned by cases computed by hand: the bootstrap's 95 % level and mAP's macro averaging."""

from __future__ import annotations

import numpy as np
import pytest

from xbench.scoring.metrics import METRICS, frame_mean_average_precision, mean_average_precision
from xbench.scoring.scores import bootstrap_interval

# -- the bootstrap interval is the central 95 % of the resampled metric ---------------------------------------

N, ROUNDS = 200, 20000


def _first_index(draw: np.ndarray) -> float:
    """A metric whose bootstrap distribution is known exactly: the first resampled index, uniform on 0..N-1."""
    return float(draw[0])


def test_default_interval_is_the_central_95_percent():
    # On the uniform distribution on 0..199, P(X <= k) = (k + 1) / 200: the 2.5 % quantile lies between 4
    # and 5, the 97.5 % quantile at 194; a 90 % interval would give 9 to 10 and 189. With 20000 rounds the
    # sample quantiles are within about 0.7 of the true ones (3 standard errors).
    lo, hi = bootstrap_interval(_first_index, N, rounds=ROUNDS, seed=3)
    assert 3.5 <= lo <= 6 and 193 <= hi <= 195.5, (lo, hi)
    assert bootstrap_interval(_first_index, N, rounds=ROUNDS, seed=3, alpha=0.05) == (lo, hi)


def test_k_fold_interval_is_the_central_95_percent():
    lo, hi = bootstrap_interval(lambda draws: float(draws["b"][0]), {"a": 10, "b": N}, rounds=ROUNDS, seed=4)
    assert 3.5 <= lo <= 6 and 193 <= hi <= 195.5, (lo, hi)


def test_alpha_sets_the_level():
    lo, hi = bootstrap_interval(_first_index, N, rounds=ROUNDS, seed=5, alpha=0.10)
    assert 8.5 <= lo <= 11 and 188 <= hi <= 190.5, (lo, hi)


def test_interval_of_a_mean_matches_the_normal_approximation():
    """The accuracy of 400 items with 280 correct: the bootstrap sd is sqrt(0.7 * 0.3 / 400) = 0.0229, so the
    95 % interval is 0.7 ± 1.96 · 0.0229 = [0.655, 0.745] (90 % would be [0.662, 0.738])."""
    correct = np.zeros(400)
    correct[:280] = 1.0
    lo, hi = bootstrap_interval(lambda idx: float(correct[idx].mean()), 400, rounds=4000, seed=0)
    assert lo == pytest.approx(0.655, abs=0.004) and hi == pytest.approx(0.745, abs=0.004)


# -- mAP is the macro average of per-class average precision --------------------------------------------------

SCORES = np.array([[0.9, 0.2], [0.8, 0.7], [0.3, 0.6], [0.1, 0.4]])
TARGETS = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
# class 0 ranks its items 0.9 (+), 0.8 (-), 0.3 (+), 0.1 (-): AP = (1/1 + 2/3) / 2 = 5/6
# class 1 ranks 0.7 (+) first: AP = 1
# macro = (5/6 + 1) / 2 = 11/12. Pooled over all 8 (micro): positives at ranks 1, 3, 6 give
# (1 + 2/3 + 3/6) / 3 = 13/18; weighted by positives: (2 · 5/6 + 1) / 3 = 8/9.
MACRO, MICRO, WEIGHTED = 11 / 12, 13 / 18, 8 / 9


def test_map_is_the_macro_average():
    got = mean_average_precision(SCORES, TARGETS)
    assert got == pytest.approx(MACRO, abs=1e-12)
    assert got != pytest.approx(MICRO) and got != pytest.approx(WEIGHTED)
    assert METRICS["mAP"].fn(SCORES, TARGETS) == pytest.approx(MACRO, abs=1e-12)


def test_map_ignores_item_order_and_score_scale():
    order = [2, 0, 3, 1]
    assert mean_average_precision(SCORES[order], TARGETS[order]) == pytest.approx(MACRO, abs=1e-12)
    logits = np.log(SCORES / (1 - SCORES))  # monotone per class: the ranking, so the AP, is unchanged
    assert mean_average_precision(logits, TARGETS) == pytest.approx(MACRO, abs=1e-12)


def test_frame_map_is_the_macro_average_over_all_frames():
    # the same 4 rows as frames of two clips ([2, C] each): pooled into one ranking per class
    got = frame_mean_average_precision([SCORES[:2], SCORES[2:]], [TARGETS[:2], TARGETS[2:]], hop_size_in_ms=40.0)
    assert got == pytest.approx(MACRO, abs=1e-12)
    assert METRICS["frame_mAP"].fn([SCORES[:3], SCORES[3:]], [TARGETS[:3], TARGETS[3:]]) == pytest.approx(MACRO)
