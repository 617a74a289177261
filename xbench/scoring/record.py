"""The result record of one (encoder, task): what ``xbench run`` writes as ``<task>@v<version>.json``.

Every reader of results (leaderboard, compare, plots, the demo) goes through :class:`ResultRecord`,
and :meth:`ResultRecord.rows` is the one conversion of a record into table rows (one per track,
columns :data:`TABLE_COLUMNS`; :mod:`xbench.scoring.table` builds frames from them).

JSON layout, format version :data:`FORMAT_VERSION` (key ``format_version``; files written before the
key existed have the same layout and read as version 1):

* identity of the task: ``task``, ``formal_name``, ``task_version``, ``task_fingerprint``, ``domain``,
  ``private``, ``weight`` (X-ARES ``eval_weight``), ``seed``, ``test_count``, ``protocol``;
* the encoder: ``encoder_slug`` (the name the user gave it, ``-`` and 16 hex of its identity's fingerprint)
  and ``encoder`` (its identity: class, fingerprint, rate, hop, ...);
* ``lite``: N for a result of a ``--lite N`` run (at most N clips per split), absent for a full run;
* ``tracks``: ``{"mlp" | "knn": {"metric", "raw", "score" (0–1), "ci95": [low, high], "folds", ...}}``; a
  track averaged over probe seeds (the default protocol's MLP) also has ``"seeds": {"probe_seeds",
  "raw", "score" (one per seed), "std", "min", "max" (of the per-seed scores)}`` (:class:`SeedScores`;
  optional, so files without it read as before);
* ``run_settings`` (a saved result is reused only when these match) and provenance (``xbench_version``,
  ``cache``, ``cache_keys``, ``timings``, ``created``, ``host``, ``torch``), kept as they are.

This module imports neither torch nor pandas.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xbench.scoring.scores import spread

FORMAT_VERSION = 1
TABLE_COLUMNS = [
    "encoder",
    "task",
    "formal_name",
    "domain",
    "private",
    "track",
    "metric",
    "raw",
    "score",
    "ci_low",
    "ci_high",
    "weight",
    "test_count",
    "protocol",
    "task_version",
    "probe_seeds",
    "seed_std",
    "seed_min",
    "seed_max",
    "lite",
]
_REQUIRED = ("task", "weight", "tracks")
_TRACK_KEYS = ("metric", "raw", "score", "ci95", "folds", "seeds")
_RECORD_KEYS = (
    "format_version",
    "task",
    "formal_name",
    "task_version",
    "task_fingerprint",
    "domain",
    "private",
    "weight",
    "test_count",
    "seed",
    "protocol",
    "encoder",
    "encoder_slug",
    "tracks",
    "run_settings",
    "lite",
)


class RecordFormatError(ValueError):
    """A result JSON this version of xbench cannot read."""


def _where(source: str | Path | None) -> str:
    return str(source) if source is not None else "result record"


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


@dataclass
class SeedScores:
    """A track averaged over probe seeds: the seeds and each seed's raw metric and 0–1 score (folds averaged)."""

    probe_seeds: list[int]
    raw: list[float]
    score: list[float]

    def spread(self) -> dict[str, float | None]:
        """``std`` (ddof 1), ``min`` and ``max`` of the per-seed scores."""
        return spread(self.score)

    def to_dict(self) -> dict[str, Any]:
        seeds, raw, score = list(self.probe_seeds), list(self.raw), list(self.score)
        return {"probe_seeds": seeds, "raw": raw, "score": score, **self.spread()}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> SeedScores:
        seeds = cls(
            [int(s) for s in obj["probe_seeds"]], [float(r) for r in obj["raw"]], [float(x) for x in obj["score"]]
        )
        if not (len(seeds.probe_seeds) == len(seeds.raw) == len(seeds.score) > 0):
            raise ValueError("seeds: probe_seeds, raw and score need one entry per seed")
        return seeds


@dataclass
class TrackScore:
    """One track's result: the raw metric, its 0–1 score and the score's 95 % bootstrap interval."""

    metric: str
    score: float
    raw: float = float("nan")
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    folds: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. "probe" of contrastive and asr tasks
    seeds: SeedScores | None = None  # a score averaged over probe seeds

    def to_dict(self) -> dict[str, Any]:
        has_ci = math.isfinite(self.ci_low) and math.isfinite(self.ci_high)
        return {
            **self.extra,
            "metric": self.metric,
            "raw": self.raw if math.isfinite(self.raw) else None,
            "score": self.score,
            "folds": list(self.folds),
            "ci95": [self.ci_low, self.ci_high] if has_ci else None,
            **({"seeds": self.seeds.to_dict()} if self.seeds is not None else {}),
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> TrackScore:
        ci = obj.get("ci95") or [None, None]
        return cls(
            metric=str(obj.get("metric", "")),
            score=float(obj["score"]),
            raw=_number(obj.get("raw")),
            ci_low=_number(ci[0]),
            ci_high=_number(ci[1]),
            folds=[float(f) for f in obj.get("folds", [])],
            extra={k: v for k, v in obj.items() if k not in _TRACK_KEYS},
            seeds=SeedScores.from_dict(obj["seeds"]) if obj.get("seeds") else None,
        )


@dataclass
class ResultRecord:
    """One (encoder, task) result with every track's score; see the module docstring for the JSON."""

    task: str
    encoder_slug: str
    weight: float
    tracks: dict[str, TrackScore]
    formal_name: str = ""
    domain: str = ""
    private: bool = False
    protocol: str = "xbench"
    task_version: int = 1
    task_fingerprint: str = ""
    test_count: int | None = None
    seed: int = 0
    encoder: dict[str, Any] = field(default_factory=dict)  # the encoder's identity
    run_settings: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)  # every other top-level key, kept as is
    lite: int | None = None  # at most this many clips per split (--lite); None: the full task

    def to_dict(self) -> dict[str, Any]:
        """The result JSON (format version :data:`FORMAT_VERSION`)."""
        out = {
            **self.provenance,
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "formal_name": self.formal_name or self.task,
            "task_version": self.task_version,
            "task_fingerprint": self.task_fingerprint,
            "domain": self.domain,
            "private": self.private,
            "weight": self.weight,
            "test_count": self.test_count,
            "seed": self.seed,
            "protocol": self.protocol,
            "encoder": self.encoder,
            "encoder_slug": self.encoder_slug,
            "tracks": {name: t.to_dict() for name, t in self.tracks.items()},
        }
        if self.run_settings is not None:
            out["run_settings"] = self.run_settings
        if self.lite:
            out["lite"] = self.lite
        return out

    @classmethod
    def from_dict(cls, obj: Any, source: str | Path | None = None) -> ResultRecord:
        """Parse a result JSON object; ``source`` (its file) names it in errors.

        Raises :class:`RecordFormatError` on an unknown ``format_version`` or missing/invalid fields.
        """
        where = _where(source)
        if not isinstance(obj, dict):
            raise RecordFormatError(f"{where}: not a result record (a JSON object is expected)")
        version = obj.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise RecordFormatError(
                f"{where}: result format version {version!r} is not supported (this xbench reads version "
                f"{FORMAT_VERSION}); rescore with this xbench, or read it with the xbench that wrote it"
            )
        missing = [k for k in _REQUIRED if k not in obj]
        if missing:
            raise RecordFormatError(f"{where}: not a result record (missing {', '.join(missing)})")
        try:
            identity = obj.get("encoder") if isinstance(obj.get("encoder"), dict) else {}
            return cls(
                task=str(obj["task"]),
                encoder_slug=str(obj.get("encoder_slug") or identity.get("class", "encoder")),
                weight=float(obj["weight"]),
                tracks={str(name): TrackScore.from_dict(t) for name, t in dict(obj["tracks"]).items()},
                formal_name=str(obj.get("formal_name") or obj["task"]),
                domain=str(obj.get("domain") or ""),
                private=bool(obj.get("private", False)),
                protocol=str(obj.get("protocol", "xbench")),
                task_version=int(obj.get("task_version", 1)),
                task_fingerprint=str(obj.get("task_fingerprint", "")),
                test_count=None if obj.get("test_count") is None else int(obj["test_count"]),
                seed=int(obj.get("seed", 0)),
                encoder=identity,
                run_settings=obj.get("run_settings"),
                provenance={k: v for k, v in obj.items() if k not in _RECORD_KEYS},
                lite=int(obj["lite"]) if obj.get("lite") else None,
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise RecordFormatError(f"{where}: invalid result record ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def read(cls, path: str | Path) -> ResultRecord:
        """The record in the result JSON file ``path``."""
        return cls.from_dict(read_json(path), source=path)

    def rows(self) -> list[dict[str, Any]]:
        """Table rows (:data:`TABLE_COLUMNS`), one per track in track-name order."""
        return [
            {
                "encoder": self.encoder_slug,
                "task": self.task,
                "formal_name": self.formal_name or self.task,
                "domain": self.domain,
                "private": self.private,
                "track": name,
                "metric": t.metric,
                "raw": t.raw,
                "score": t.score,
                "ci_low": t.ci_low,
                "ci_high": t.ci_high,
                "weight": self.weight,
                "test_count": self.test_count,
                "protocol": self.protocol,
                "task_version": self.task_version,
                **_seed_columns(t.seeds),
                "lite": self.lite or 0,
            }
            for name, t in sorted(self.tracks.items())
        ]


def _seed_columns(seeds: SeedScores | None) -> dict[str, Any]:
    """The table's seed columns: the number of probe seeds and the spread of their scores (None without seeds)."""
    if seeds is None:
        return {"probe_seeds": None, "seed_std": None, "seed_min": None, "seed_max": None}
    s = seeds.spread()
    return {"probe_seeds": len(seeds.probe_seeds), "seed_std": s["std"], "seed_min": s["min"], "seed_max": s["max"]}


def read_json(path: str | Path) -> Any:
    """A JSON file's content; :class:`RecordFormatError` naming the file when it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordFormatError(f"{path}: unreadable JSON ({exc})") from exc


def is_result(obj: Any) -> bool:
    """Whether a parsed JSON object is meant as a result record (rather than a summary or other file)."""
    return isinstance(obj, dict) and "task" in obj and "tracks" in obj


def read_records(path: str | Path) -> list[ResultRecord]:
    """The records of a result JSON or a run's ``summary.json`` (``{"results": [...]}``); [] for other JSON."""
    obj = read_json(path)
    if is_result(obj):
        return [ResultRecord.from_dict(obj, source=path)]
    if isinstance(obj, dict) and isinstance(obj.get("results"), list):
        return [ResultRecord.from_dict(r, source=f"{path} (results[{i}])") for i, r in enumerate(obj["results"])]
    return []


__all__ = [
    "FORMAT_VERSION",
    "TABLE_COLUMNS",
    "RecordFormatError",
    "ResultRecord",
    "SeedScores",
    "TrackScore",
    "is_result",
    "read_json",
    "read_records",
]
