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
    metric: Callable[[np.ndarray], float],
    n_items: int | Mapping[Any, int],
    rounds: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric`` over test items resampled with replacement.

    ``metric(indices)`` computes the metric on the chosen test items. For k-fold tasks pass
    ``n_items`` as {fold: count}: each round resamples within every fold and ``metric`` receives a
    dict {fold: indices}. Rounds where the metric is undefined (raises ValueError) are skipped.
    """
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        if isinstance(n_items, Mapping):
            draw: Any = {k: rng.integers(0, n, n) for k, n in n_items.items()}
        else:
            draw = rng.integers(0, n_items, n_items)
        try:
            values.append(metric(draw))
        except ValueError:
            continue
    if not values:
        raise ValueError("bootstrap: the metric was undefined on every resample")
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
