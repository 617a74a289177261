"""Scores averaged over probe seeds: the two-level bootstrap, the per-seed spread, and the result record."""

import json

import numpy as np
import pytest

from xbench.scoring.record import FORMAT_VERSION, TABLE_COLUMNS, ResultRecord, SeedScores, TrackScore
from xbench.scoring.scores import bootstrap_interval, seed_resampled, spread
from xbench.scoring.table import table


def test_seed_draws_leave_the_item_draws_unchanged():
    correct = (np.random.default_rng(0).random(300) < 0.7).astype(float)
    items_only = bootstrap_interval(lambda idx: correct[idx].mean(), 300, rounds=200, seed=4)
    with_seeds = bootstrap_interval(lambda idx, seeds: correct[idx].mean(), 300, rounds=200, seed=4, n_seeds=5)
    assert with_seeds == items_only
    # one seed: exactly the single probe's interval
    full = [correct.mean()]
    def one_seed(idx, seeds):
        return seed_resampled(lambda s: correct[idx].mean(), full, seeds)

    one = bootstrap_interval(one_seed, 300, rounds=200, seed=4, n_seeds=1)
    assert one == items_only


def test_seed_resampling_matches_the_hand_computed_distribution():
    """Five seeds scoring 0, 0, 0, 0, 1 on every item: a round's score is k/5, k ~ Binomial(5, 1/5).

    P(k = 0) = 0.328 > 2.5 %, P(k <= 2) = 0.942 < 97.5 % <= P(k <= 3) = 0.993: the interval is (0.0, 0.6).
    The difference of two such means drawn on their own is d/5, d = k_b - k_a: P(d <= -3) = 0.022 < 2.5 %
    <= P(d <= -2) = 0.111 and P(d <= 1) = 0.889 < 97.5 % <= P(d <= 2) = 0.978: (-0.4, 0.4).
    """
    per_seed = np.array([0.0, 0.0, 0.0, 0.0, 1.0])

    def score(seeds):  # the seeds score the same on every item: only the seed part varies
        return seed_resampled(lambda s: per_seed[s], per_seed, seeds)

    lo, hi = bootstrap_interval(lambda idx, seeds: score(seeds), 50, 4000, 1, n_seeds=5)
    assert (lo, hi) == (pytest.approx(0.0), pytest.approx(0.6))
    # two groups drawn on their own
    lo, hi = bootstrap_interval(
        lambda idx, seeds: score(seeds["b"]) - score(seeds["a"]), 50, 4000, 1, n_seeds={"a": 5, "b": 5}
    )
    assert (lo, hi) == (pytest.approx(-0.4), pytest.approx(0.4))


def test_a_round_takes_the_first_seeds_items_and_the_drawn_seeds_mean():
    """One metric evaluation per round: seed 2's value on the items, moved by mean(full[2, 0, 0]) − full[2]."""
    calls = []

    def on_items(s):
        calls.append(s)
        return [0.5, 0.6, 0.9][s]

    full = [0.55, 0.65, 0.8]
    assert seed_resampled(on_items, full, np.array([2, 0, 0])) == pytest.approx(0.9 + (0.8 + 0.55 + 0.55) / 3 - 0.8)
    assert calls == [2]


def test_spread_is_sample_std_min_max():
    assert spread([0.5, 0.7, 0.9]) == {"std": pytest.approx(0.2), "min": 0.5, "max": 0.9}
    assert spread([0.4]) == {"std": None, "min": 0.4, "max": 0.4}
    with pytest.raises(ValueError):
        spread([])


def _record(seeds=None):
    mlp = TrackScore("accuracy", 0.8, raw=0.8, ci_low=0.7, ci_high=0.9, folds=[0.8], seeds=seeds)
    return ResultRecord(task="t", encoder_slug="E-1", weight=10.0, tracks={"mlp": mlp}, formal_name="t", test_count=10)


def test_record_keeps_per_seed_scores_and_their_spread(tmp_path):
    seeds = SeedScores([42, 43, 44], [0.7, 0.8, 0.9], [0.7, 0.8, 0.9])
    obj = json.loads(json.dumps(_record(seeds).to_dict()))
    assert obj["format_version"] == FORMAT_VERSION == 1  # an optional key: version 1 files still read
    entry = obj["tracks"]["mlp"]["seeds"]
    assert entry["probe_seeds"] == [42, 43, 44] and entry["score"] == [0.7, 0.8, 0.9]
    assert (entry["std"], entry["min"], entry["max"]) == (pytest.approx(0.1), 0.7, 0.9)
    back = ResultRecord.from_dict(obj)
    assert back == _record(seeds) and "seeds" not in back.tracks["mlp"].extra
    row = table([back]).iloc[0]
    assert list(table([back]).columns) == TABLE_COLUMNS
    assert (row.probe_seeds, row.seed_min, row.seed_max) == (3, 0.7, 0.9) and row.seed_std == pytest.approx(0.1)


def test_records_without_seeds_read_as_before():
    old = {"task": "t", "weight": 5, "tracks": {"mlp": {"score": 0.5, "ci95": [0.4, 0.6], "metric": "accuracy"}}}
    record = ResultRecord.from_dict(old)
    assert record.tracks["mlp"].seeds is None
    assert "seeds" not in record.to_dict()["tracks"]["mlp"]
    row = table([record]).iloc[0]
    assert row.probe_seeds is pd_na() and np.isnan(row.seed_std)
    with pytest.raises(ValueError, match="one entry per seed"):
        SeedScores.from_dict({"probe_seeds": [1, 2], "raw": [0.5], "score": [0.5]})


def pd_na():
    import pandas as pd

    return pd.NA
