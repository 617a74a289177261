"""Scores: raw metric → 0–1 (higher better), weighted averages, and bootstrap intervals.

One implementation, used by the run summary, the Python API and the leaderboard export.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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

    A score that is a mean over probe seeds passes ``n_seeds``: each round then also resamples the seeds
    with replacement and ``metric(indices, seed_indices)`` averages over the drawn seeds (see
    :func:`seed_mean`); ``n_seeds`` as {group: count} draws each group's seeds on its own (two runs with
    different seed sets). The seeds come from a second generator, so the item draws are the same as
    without ``n_seeds``, and one seed gives today's single-probe interval.

    Why a joint (two-level) bootstrap rather than adding an item variance and a seed variance: the
    metrics (mAP, F1, R@1) are not means over items, the two sources interact (which items a probe gets
    wrong depends on its seed), and percentiles of the joint draws need neither additivity nor
    normality; ``xbench compare`` applies the same item and seed draws to two runs for a paired
    interval. Resampling ``S`` seeds understates the seed part of the variance by a factor ``(S − 1)/S``
    (0.8 for 5 seeds); on the offline suite the test items dominate the width
    (``benchmarks/bench_seed_coverage.py`` measures how often single-seed scores fall inside).
    """
    rng = np.random.default_rng(seed)
    seed_rng = np.random.default_rng([seed, 1]) if n_seeds is not None else None
    values = []
    for _ in range(rounds):
        draw: Any = _draw(rng, n_items)
        try:
            values.append(metric(draw) if seed_rng is None else metric(draw, _draw(seed_rng, n_seeds)))
        except ValueError:
            continue
    if not values:
        raise ValueError("bootstrap: the metric was undefined on every resample")
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _draw(rng: np.random.Generator, sizes: Any) -> Any:
    """Indices drawn with replacement: ``[n]`` for a count, {key: [n_key]} for a mapping of counts."""
    if isinstance(sizes, Mapping):
        return {k: rng.integers(0, n, n) for k, n in sizes.items()}
    return rng.integers(0, sizes, sizes)


def seed_mean(value: Callable[[int], float], seed_indices: np.ndarray) -> float:
    """Mean of ``value(s)`` over drawn seed indices, repeats counted (each distinct seed computed once)."""
    seeds, counts = np.unique(np.asarray(seed_indices), return_counts=True)
    return float(sum(int(c) * value(int(s)) for s, c in zip(seeds, counts, strict=True)) / counts.sum())


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
