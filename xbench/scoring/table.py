"""The results table: one row per (encoder, task, track), columns :data:`~xbench.scoring.record.TABLE_COLUMNS`.

:func:`xbench.pipeline.run.evaluate` returns it, ``summary.csv`` and the leaderboard's long CSV hold it,
and the plots draw from it. Rows come from :meth:`ResultRecord.rows` (:func:`table`) or from a CSV
of this layout (:func:`complete`); rows are ordered by encoder (first appearance), task, track.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from xbench.scoring.record import TABLE_COLUMNS, ResultRecord
from xbench.scoring.scores import ScoredTask, aggregate

TRACKS = ("mlp", "knn")
TRACK_TITLES = {"mlp": "MLP", "knn": "kNN"}
AVERAGE_COLUMNS = ["encoder", "track", "group", "score", "tasks", "weight"]
_DEFAULTS: dict[str, Any] = {
    "formal_name": None,
    "domain": "",
    "private": False,
    "metric": "",
    "raw": float("nan"),
    "ci_low": float("nan"),
    "ci_high": float("nan"),
    "test_count": None,
    "protocol": "xbench",
    "task_version": 1,
    "probe_seeds": None,
    "seed_std": float("nan"),
    "seed_min": float("nan"),
    "seed_max": float("nan"),
    "lite": 0,  # a --lite N run's N; 0: the full task
}


def table(records: Iterable[ResultRecord]) -> pd.DataFrame:
    """The table of ``records`` (every track of every record)."""
    return complete(pd.DataFrame([row for r in records for row in r.rows()], columns=TABLE_COLUMNS))


def complete(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame in the table layout: optional columns filled with defaults, types fixed, extra columns dropped.

    Accepts ``normalised`` for ``score`` (X-ARES's published table and long CSVs of earlier versions).
    """
    frame = frame.copy()
    if "score" not in frame.columns and "normalised" in frame.columns:
        frame = frame.rename(columns={"normalised": "score"})
    for col, value in _DEFAULTS.items():
        if col not in frame.columns:
            frame[col] = value
    frame["formal_name"] = frame.formal_name.where(frame.formal_name.notna(), frame.task).astype(str)
    frame["domain"] = frame.domain.fillna("").astype(str)
    frame["private"] = frame.private.map(lambda v: str(v).strip().lower() in ("true", "1", "yes")).astype(bool)
    frame["encoder"] = frame.encoder.astype(str)
    frame["task"] = frame.task.astype(str)
    frame["track"] = frame.track.astype(str)
    frame["metric"] = frame.metric.fillna("").astype(str)
    for col in ("raw", "score", "ci_low", "ci_high", "weight", "seed_std", "seed_min", "seed_max"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    for col in ("test_count", "probe_seeds"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    frame["task_version"] = pd.to_numeric(frame.task_version, errors="coerce").fillna(1).astype(int)
    frame["lite"] = pd.to_numeric(frame.lite, errors="coerce").fillna(0).astype(int)
    rank = {e: i for i, e in enumerate(dict.fromkeys(frame.encoder))}
    frame["_rank"] = frame.encoder.map(rank)
    frame = frame.sort_values(["_rank", "task", "track"], kind="stable")
    return frame[TABLE_COLUMNS].reset_index(drop=True)


def scored_tasks(frame: pd.DataFrame) -> list[ScoredTask]:
    """The rows as :class:`~xbench.scoring.scores.ScoredTask` items (for :func:`~xbench.scoring.scores.aggregate`)."""
    return [
        ScoredTask(r.task, r.track, float(r.score), float(r.weight), bool(r.private), r.domain, r.protocol)
        for r in frame.itertuples()
    ]


def averages(frame: pd.DataFrame) -> pd.DataFrame:
    """Per encoder: :func:`~xbench.scoring.scores.aggregate` rows (columns :data:`AVERAGE_COLUMNS`)."""
    rows = []
    for encoder, part in frame.groupby("encoder", sort=False):
        rows += [{"encoder": encoder, **row} for row in aggregate(scored_tasks(part))]
    return pd.DataFrame(rows, columns=AVERAGE_COLUMNS)


def track_order(frame: pd.DataFrame) -> list[str]:
    """The frame's tracks: MLP, kNN, then any others by name."""
    present = set(frame.track)
    return [t for t in TRACKS if t in present] + sorted(present - set(TRACKS))


def task_order(frame: pd.DataFrame) -> list[str]:
    """X-ARES's order: public tasks by config name, then private tasks by config name."""
    private = frame.drop_duplicates("task").set_index("task").private
    return sorted(private.index, key=lambda t: (bool(private[t]), t))


def encoders(frame: pd.DataFrame) -> list[str]:
    """The frame's encoders in order of first appearance."""
    return list(dict.fromkeys(frame.encoder))


__all__ = [
    "AVERAGE_COLUMNS",
    "TABLE_COLUMNS",
    "TRACKS",
    "TRACK_TITLES",
    "averages",
    "complete",
    "encoders",
    "scored_tasks",
    "task_order",
    "track_order",
    "table",
]
