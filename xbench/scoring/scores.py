"""Scores: raw metric → 0–1 (higher better), weighted averages, and bootstrap intervals.

One implementation, used by the run summary, the Python API and the leaderboard export.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def normalise(raw: float, lo: float, hi: float, higher_is_better: bool) -> float:
    """Map ``raw`` linearly from ``[lo, hi]`` to ``[0, 1]``, flipped when lower is better, clamped.

    Bounds and direction come from the metric table (:data:`xbench.scoring.metrics.METRICS`) or the
    task's own ``metric_bounds``: accuracy, mAP, F1, R@1 (0–1, higher better) stay as they are; WER
    gives iWER = max(0, 1 − WER); EER gives 1 − EER; MSE/MAE go through their declared bounds.
    """
    if not hi > lo:
        raise ValueError(f"normalisation bounds must satisfy lo < hi, got ({lo}, {hi})")
    if raw != raw:  # NaN
        raise ValueError("cannot normalise a NaN metric")
    frac = (raw - lo) / (hi - lo)
    score = frac if higher_is_better else 1.0 - frac
    return float(min(1.0, max(0.0, score)))


@dataclass(frozen=True)
class ScoredTask:
    """One task's normalised score on one track, with what the averages need."""

    task: str
    track: str
    score: float
    weight: float
    private: bool = False
    domain: str = ""
    protocol: str = "xbench"


def weighted_average(items: Iterable[ScoredTask]) -> float | None:
    """Σ score·weight / Σ weight, or None when no item has weight."""
    items = list(items)
    total = sum(i.weight for i in items)
    if total <= 0:
        return None
    return float(sum(i.score * i.weight for i in items) / total)


def aggregate(items: Iterable[ScoredTask]) -> list[dict[str, Any]]:
    """Weighted averages per track over: all tasks, public tasks, private tasks, and each domain.

    Tasks without a kNN score simply have no kNN item and drop out of the kNN averages only.
    Refuses to average across protocols.
    """
    items = list(items)
    protocols = {i.protocol for i in items}
    if len(protocols) > 1:
        raise ValueError(f"refusing to average scores from different protocols: {sorted(protocols)}")
    groups: dict[str, Callable[[ScoredTask], bool]] = {
        "all": lambda i: True,
        "public": lambda i: not i.private,
        "private": lambda i: i.private,
    }
    for domain in sorted({i.domain for i in items if i.domain}):
        groups[domain] = lambda i, d=domain: i.domain == d
    rows = []
    for track in sorted({i.track for i in items}):
        on_track = [i for i in items if i.track == track]
        for group, keep in groups.items():
            chosen = [i for i in on_track if keep(i)]
            avg = weighted_average(chosen)
            if avg is not None:
                rows.append(
                    {
                        "track": track,
                        "group": group,
                        "score": avg,
                        "tasks": len(chosen),
                        "weight": float(sum(i.weight for i in chosen)),
                    }
                )
    return rows


def bootstrap_interval(
    metric: Callable[..., float],
    n_items: int | Mapping[Any, int],
    rounds: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    n_seeds: int | Mapping[Any, int] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric`` over test items resampled with replacement.

    ``metric(indices)`` computes the metric on the chosen test items. For k-fold tasks pass
    ``n_items`` as {fold: count}: each round resamples within every fold and ``metric`` receives a
    dict {fold: indices}. Rounds where the metric is undefined (raises ValueError) are skipped.

    A score that is a mean over probe seeds passes ``n_seeds``: each round then also draws that many seed
    indices with replacement and ``metric(indices, seed_indices)`` scores the round with
    :func:`seed_resampled`; ``n_seeds`` as {group: count} draws each group's seeds on its own (two runs
    with different seed sets). The seeds come from a second generator, so the item draws are the same as
    without ``n_seeds``, and with one seed the interval is the single probe's.

    Why this split of the two sources rather than the full two-level bootstrap (every drawn seed's metric
    on every round's items): that costs one metric evaluation per seed and round, ``S`` times a single
    probe's bootstrap for ranking metrics (mAP, segment F1, EER) that cannot be summed over items. Here a
    round costs one evaluation, as with one probe: its item part is one probe's (the first drawn seed's)
    metric on the drawn items minus that probe's full-test metric, its seed part the mean of the drawn
    seeds' full-test metrics, resampled exactly. The item part of one probe varies at least as much as
    that of the mean over seeds (for metrics that are means over items, the variance of an average is at
    most the average variance), so the interval errs wide; the two parts are added as independent, and
    percentiles need no normality. ``xbench compare`` applies the same item and seed draws to two runs.
    ``benchmarks/bench_seed_coverage.py`` measures how often single-seed scores fall inside.
    """
    values = []
    for draw, seeds in bootstrap_draws(n_items, rounds, seed, n_seeds):
        try:
            values.append(metric(draw) if seeds is None else metric(draw, seeds))
        except ValueError:
            continue
    if not values:
        raise ValueError("bootstrap: the metric was undefined on every resample")
    return percentile_interval(values, alpha)


def bootstrap_draws(
    n_items: int | Mapping[Any, int], rounds: int, seed: int, n_seeds: int | Mapping[Any, int] | None = None
) -> list[tuple[Any, Any]]:
    """Every round's (item indices, seed indices or None), as :func:`bootstrap_interval` draws them.

    For metrics computed for all rounds at once (accuracy from per-item correctness).
    """
    items = _sampler(np.random.default_rng(seed), n_items)
    if n_seeds is None:
        return [(items(), None) for _ in range(rounds)]
    seed_rng = np.random.default_rng([seed, 1])  # all rounds' seeds in one draw: [rounds, n] per group
    if isinstance(n_seeds, Mapping):
        drawn = {k: seed_rng.integers(0, n, (rounds, n)) for k, n in n_seeds.items()}
        return [(items(), {k: d[r] for k, d in drawn.items()}) for r in range(rounds)]
    all_seeds = seed_rng.integers(0, n_seeds, (rounds, n_seeds))
    return [(items(), all_seeds[r]) for r in range(rounds)]


def percentile_interval(values: Any, alpha: float = 0.05) -> tuple[float, float]:
    """The percentile interval ``(alpha/2, 1 − alpha/2)`` of bootstrap values."""
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _sampler(rng: np.random.Generator, sizes: Any) -> Callable[[], Any]:
    """Draws indices with replacement: ``[n]`` for a count, {key: [n_key]} for a mapping of counts."""
    integers = rng.integers
    if isinstance(sizes, Mapping):
        pairs = list(sizes.items())
        return lambda: {k: integers(0, n, n) for k, n in pairs}
    return lambda: integers(0, sizes, sizes)


def seed_resampled(on_items: Callable[[int], float], full: Sequence[float], seed_indices: np.ndarray) -> float:
    """One bootstrap round of a score averaged over probe seeds (see :func:`bootstrap_interval`).

    ``on_items(s)``: seed ``s``'s metric on the round's drawn items; ``full[s]``: its metric on all test
    items. The first drawn seed's metric on the drawn items, moved by the drawn seeds' mean full-test
    metric minus that seed's: ``on_items(s0) + (mean(full[seeds]) − full[s0])`` (with one seed, exactly
    ``on_items(s0)``).
    """
    seeds = np.asarray(seed_indices)
    first = int(seeds[0])
    full = np.asarray(full, dtype=np.float64)
    return float(on_items(first) + (full[seeds].mean() - full[first]))


def spread(values: Iterable[float]) -> dict[str, float | None]:
    """``std`` (sample, ddof 1; None for fewer than two values), ``min`` and ``max`` of per-seed scores."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("spread of no values")
    return {
        "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
        "min": float(arr.min()),
        "max": float(arr.max()),
    }
