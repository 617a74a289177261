"""``xbench compare A B``: per-task score differences with a paired bootstrap interval.

Both encoders were scored on the same test items, so the interval resamples those items once per
round and recomputes both scores on the same draw (within every fold for k-fold tasks, as the run's
own intervals do). A track averaged over probe seeds (the default protocol's MLP) also resamples its
seeds each round, as the run's own interval does: the same seed draw for both runs when they used the
same seeds (paired by seed), independent draws when their seed sets differ. A difference whose
interval contains 0 is flagged as inside the noise.

The paired bootstrap needs per-item predictions. ``xbench run`` writes them beside each result
JSON as ``<task>@v<version>.predictions.npz`` (:func:`write_predictions`), format
``xbench-predictions/2``, saved with ``allow_pickle=False`` (``S``: the track's probe seeds):

=====================  ============================  ==========================================
array                  shape / dtype                  meaning
=====================  ============================  ==========================================
``format``             0-d str                        ``"xbench-predictions/2"``
``task``               0-d str                        task name
``keys``, ``folds``    [N] str                        test item key and its fold (``""``: none)
``metric_<track>``     0-d str                        metric of the track (``mlp``, ``knn``)
``targets``            [N] int64 or [N, C] uint8      clip tasks: class index / multi-hot
``seeds_<track>``      [S] int64                      probe seeds of a track trained per seed
``<track>_pred``       ([S,] N) int32                 clip, metric ``accuracy``: argmax class
``<track>_scores``     ([S,] N, C) float32            clip, other metrics (e.g. mAP): scores
``frame_offsets``      [N + 1] int64                  frame tasks: item i is rows offsets[i]:[i+1]
``frame_targets``      [ΣT, C] uint8                  frame tasks: frame targets
``<track>_frame_pred`` ([S,] ΣT, C) uint8             frame tasks: round(sigmoid(logit))
``hop_ms``             0-d float64                    frame tasks: encoder hop
``segment_length_s``   0-d float64                    frame tasks: segment-F1 window
``bounds_<track>``     [2] float64                    raw bounds (lo, hi) of the track's 0–1 score
``higher_<track>``     0-d bool                       whether a higher raw metric is better
=====================  ============================  ==========================================

``bounds_<track>`` / ``higher_<track>`` are the task's own ``metric_bounds`` / ``higher_is_better``
(MLP track) or the metric table's defaults (kNN track, accuracy), as the run normalised them; files
written without them are normalised with the metric table's defaults. A track with ``seeds_<track>``
has its prediction arrays stacked over those seeds (first axis); a track without has one prediction
per item. Files of format ``xbench-predictions/1`` (no seed arrays) read as one seed per track.

Items are in the run's test order, folds concatenated in fold order.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xbench.core.atomic_io import atomic_writer
from xbench.scoring.metrics import CLIP_METRICS, get_metric, segment_f1
from xbench.scoring.record import RecordFormatError, ResultRecord, is_result, read_json
from xbench.scoring.scores import ScoredTask, bootstrap_interval, normalise, seed_resampled, weighted_average

FORMAT = "xbench-predictions/2"
READS = ("xbench-predictions/1", FORMAT)


class CompareError(ValueError):
    """Two runs that cannot be compared."""


# --------------------------------------------------------------------------------------------------
# The predictions file
# --------------------------------------------------------------------------------------------------


def predictions_path(result_json: str | Path) -> Path:
    """``<task>@v<version>.predictions.npz`` beside the result JSON ``<task>@v<version>.json``."""
    p = Path(result_json)
    return p.with_name(p.stem + ".predictions.npz")


def _np(x: Any) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def write_predictions(
    path: str | Path,
    task: Any,
    hop_ms: float,
    keys: Mapping[str, Sequence[str]],
    tests: Mapping[str, Mapping[str, tuple[Any, Any]]],
    seeds: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """Save per-item predictions of one (encoder, task) for :func:`compare_runs`.

    ``keys``: {fold: test item keys}; ``tests``: {track: {fold: (scores or logits, ProbeData)}}, the
    structures :class:`xbench.pipeline.run.TaskRunner` builds (``tests_mlp``, ``tests_knn``);
    ``seeds``: {track: probe seeds} for tracks whose entries hold one output per seed instead.
    """
    seeds = {track: [int(s) for s in ss] for track, ss in (seeds or {}).items() if track in tests}
    tests = {track: per_fold for track, per_fold in tests.items() if per_fold}
    if not tests:
        raise ValueError("write_predictions: no track has test predictions")
    folds = list(keys)
    frame_level = task.task_type == "frame"
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "task": np.array(task.name),
        "keys": np.array([str(k) for f in folds for k in keys[f]]),
        "folds": np.array([str(f) for f in folds for _ in keys[f]]),
    }
    first = next(iter(tests.values()))
    if frame_level:
        targets = [_np(t) for f in folds for t in first[f][1].targets]
        arrays["frame_offsets"] = np.concatenate([[0], np.cumsum([len(t) for t in targets])]).astype(np.int64)
        arrays["frame_targets"] = np.concatenate(targets).astype(np.uint8)
        arrays["hop_ms"] = np.array(float(hop_ms))
        arrays["segment_length_s"] = np.array(float(dict(task.metric_args).get("segment_length_in_s", 1.0)))
    else:
        targets_np = np.concatenate([_np(first[f][1].targets) for f in folds])
        arrays["targets"] = targets_np.astype(np.int64 if targets_np.ndim == 1 else np.uint8)
    for track, per_fold in tests.items():
        metric = "accuracy" if track == "knn" else task.metric
        arrays[f"metric_{track}"] = np.array(metric)
        own = (getattr(task, "metric_bounds", None), getattr(task, "higher_is_better", None))
        bounds, higher = get_metric(metric).normalisation(*((None, None) if track == "knn" else own))
        if bounds is not None:
            arrays[f"bounds_{track}"] = np.asarray(bounds, dtype=np.float64)
            arrays[f"higher_{track}"] = np.array(bool(higher))
        if track in seeds:
            arrays[f"seeds_{track}"] = np.asarray(seeds[track], dtype=np.int64)
            per_seed = [
                _prediction_arrays(track, metric, frame_level, [per_fold[f][0][s] for f in folds])
                for s in range(len(seeds[track]))
            ]
            arrays.update({name: np.stack([p[name] for p in per_seed]) for name in per_seed[0]})
        else:
            arrays.update(_prediction_arrays(track, metric, frame_level, [per_fold[f][0] for f in folds]))
    n = len(arrays["keys"])
    if len(arrays.get("targets", arrays.get("frame_offsets", np.zeros(n + 1))[1:])) != n:
        raise ValueError(f"write_predictions: {n} keys but a different number of test items")
    path = Path(path)
    with atomic_writer(path) as fh:
        np.savez_compressed(fh, **arrays)
    return path


def _prediction_arrays(track: str, metric: str, frame_level: bool, outputs: list[Any]) -> dict[str, np.ndarray]:
    """One probe's prediction array of a track from its per-fold outputs (see the module docstring)."""
    if frame_level:
        logits = np.concatenate([np.asarray(x, dtype=np.float64) for out in outputs for x in out])
        return {f"{track}_frame_pred": np.round(1.0 / (1.0 + np.exp(-logits))).astype(np.uint8)}
    if metric == "accuracy":
        return {f"{track}_pred": np.concatenate([np.asarray(o).argmax(axis=-1) for o in outputs]).astype(np.int32)}
    return {f"{track}_scores": np.concatenate([np.asarray(o, dtype=np.float32) for o in outputs])}


@dataclass
class Predictions:
    """One predictions file, read back; :meth:`metric` scores a track on chosen rows."""

    path: Path
    arrays: dict[str, np.ndarray]

    @classmethod
    def read(cls, path: str | Path) -> Predictions:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        fmt = str(arrays.get("format", ""))
        if fmt not in READS:
            raise CompareError(f"{path}: not an {FORMAT} file (format {fmt!r})")
        for track in (k[len("metric_") :] for k in list(arrays) if k.startswith("metric_")):
            if f"seeds_{track}" not in arrays:  # one prediction per item: one seed
                for name in (f"{track}_pred", f"{track}_scores", f"{track}_frame_pred"):
                    if name in arrays:
                        arrays[name] = arrays[name][None]
        return cls(Path(path), arrays)

    def seeds(self, track: str) -> list[int] | None:
        """The track's probe seeds, or None when the file records none (one prediction per item)."""
        key = f"seeds_{track}"
        return [int(s) for s in self.arrays[key]] if key in self.arrays else None

    def n_seeds(self, track: str) -> int:
        """How many probes (seeds) the track has predictions of."""
        seeds = self.seeds(track)
        return 1 if seeds is None else len(seeds)

    @property
    def tracks(self) -> list[str]:
        return sorted(k[len("metric_") :] for k in self.arrays if k.startswith("metric_"))

    def metric_name(self, track: str) -> str:
        return str(self.arrays[f"metric_{track}"])

    def items(self) -> list[tuple[str, str, int]]:
        """(fold, key, occurrence) per row: the pairing key (a key may repeat, e.g. crops)."""
        seen: dict[tuple[str, str], int] = {}
        out = []
        for fold, key in zip(self.arrays["folds"].tolist(), self.arrays["keys"].tolist(), strict=True):
            n = seen.get((fold, key), 0)
            seen[(fold, key)] = n + 1
            out.append((fold, key, n))
        return out

    def fold_rows(self) -> dict[str, np.ndarray]:
        """{fold: row numbers}, folds in file order."""
        folds = self.arrays["folds"]
        return {f: np.flatnonzero(folds == f) for f in dict.fromkeys(folds.tolist())}

    def metric(self, track: str, rows: np.ndarray, seed: int = 0) -> float:
        """The track's raw metric on ``rows`` (one fold's items, possibly repeated) for the ``seed``-th probe."""
        a, name = self.arrays, self.metric_name(track)
        if f"{track}_frame_pred" in a:
            off, pred, tar = a["frame_offsets"], a[f"{track}_frame_pred"][seed], a["frame_targets"]
            logits = [np.where(pred[off[i] : off[i + 1]] > 0, 1.0, -1.0) for i in rows]
            targets = [tar[off[i] : off[i + 1]] for i in rows]
            average = "micro" if name.endswith("micro") else "macro"
            return segment_f1(logits, targets, float(a["hop_ms"]), float(a["segment_length_s"]), average)
        if f"{track}_pred" in a:
            if len(rows) == 0:
                raise ValueError("accuracy of an empty test set")
            return float((a[f"{track}_pred"][seed, rows] == a["targets"][rows]).mean())
        fn = CLIP_METRICS.get(name)
        if fn is None:
            raise CompareError(f"{self.path}: metric {name!r} cannot be recomputed from predictions")
        return fn(a[f"{track}_scores"][seed, rows], a["targets"][rows])

    def seed_metric(self, track: str, rows: np.ndarray, seeds: np.ndarray, full: Sequence[float]) -> float:
        """A bootstrap round's score over drawn seeds (:func:`xbench.scoring.scores.seed_resampled`).

        ``rows``: the round's drawn rows of one fold; ``full``: each seed's metric on all of the fold's rows.
        """
        return seed_resampled(lambda s: self.metric(track, rows, s), full, seeds)

    def normalisation(self, track: str) -> tuple[tuple[float, float], bool]:
        """(bounds, higher_is_better) the run scored the track with: as recorded, else the metric table's."""
        a, name = self.arrays, self.metric_name(track)
        if f"bounds_{track}" in a:
            lo, hi = (float(x) for x in a[f"bounds_{track}"])
            return (lo, hi), bool(a[f"higher_{track}"])
        try:
            bounds, higher = get_metric(name).normalisation()
        except KeyError as exc:
            raise CompareError(f"{self.path}: {exc.args[0]}") from None
        if bounds is None:
            raise CompareError(f"{self.path}: metric {name!r} has no default 0–1 bounds and the file records none")
        return bounds, higher


def _score_fn(a: Predictions, b: Predictions, track: str) -> Callable[[float], float]:
    """Raw metric → 0–1 score with the bounds both runs were scored with (the task's own, if it declares any)."""
    bounds, higher = a.normalisation(track)
    if b.normalisation(track) != (bounds, higher):
        other = b.normalisation(track)
        raise CompareError(f"track {track}: the runs normalise the metric differently ({bounds, higher} vs {other})")
    lo, hi = bounds
    return lambda raw: normalise(raw, lo, hi, higher)


# --------------------------------------------------------------------------------------------------
# Paired bootstrap
# --------------------------------------------------------------------------------------------------


@dataclass
class TaskDifference:
    """B − A on one (task, track), in normalised score."""

    task: str
    track: str
    metric: str
    weight: float
    private: bool
    score_a: float
    score_b: float
    diff: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    items: int = 0
    note: str = ""
    rounds: dict[int, float] = field(default_factory=dict, repr=False)

    @property
    def verdict(self) -> str:
        """``B better`` / ``A better`` when the interval excludes 0, else ``within noise``."""
        return _verdict(self.ci_low, self.ci_high)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "track": self.track,
            "metric": self.metric,
            "weight": self.weight,
            "private": self.private,
            "score_a": self.score_a,
            "score_b": self.score_b,
            "diff": self.diff,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "items": self.items,
            "verdict": self.verdict,
            "note": self.note,
        }


def paired_difference(
    a: Predictions, b: Predictions, track: str, rounds: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float, int, dict[int, float]]:
    """(B − A, interval low, high, items, {round: B − A}) of one track, resampling the same items for both.

    Each round draws items within every fold (:func:`xbench.scoring.scores.bootstrap_interval`) and probe
    seeds, scores both runs on the drawn items (each the mean over its drawn seeds), and averages the fold
    scores as the run does. Runs with the same probe seeds get the same seed draw (paired by seed); runs
    with different seed sets draw their seeds independently.
    """
    metric = a.metric_name(track)
    if b.metric_name(track) != metric:
        raise CompareError(f"track {track}: metrics differ ({metric} vs {b.metric_name(track)})")
    pos_b = {item: i for i, item in enumerate(b.items())}
    items_a = a.items()
    if len(items_a) != len(pos_b) or any(item not in pos_b for item in items_a):
        missing = sum(item not in pos_b for item in items_a)
        raise CompareError(
            f"the two runs were not scored on the same test items ({len(items_a)} vs {len(pos_b)} items, "
            f"{missing} of A's missing from B); a paired comparison needs the same test set"
        )
    to_b = np.array([pos_b[item] for item in items_a], dtype=np.int64)
    rows_a = a.fold_rows()
    score = _score_fn(a, b, track)
    paired = seeds_paired(a, b, track)
    n_seeds: int | dict[str, int] = a.n_seeds(track) if paired else {"a": a.n_seeds(track), "b": b.n_seeds(track)}

    full_a = {f: [a.metric(track, rows, s) for s in range(a.n_seeds(track))] for f, rows in rows_a.items()}
    full_b = {f: [b.metric(track, to_b[rows], s) for s in range(b.n_seeds(track))] for f, rows in rows_a.items()}

    def diff_on(draw: Mapping[str, np.ndarray], seeds: Any) -> float:
        seeds_a, seeds_b = (seeds, seeds) if paired else (seeds["a"], seeds["b"])
        sa = np.mean([a.seed_metric(track, rows_a[f][idx], seeds_a, full_a[f]) for f, idx in draw.items()])
        sb = np.mean([b.seed_metric(track, to_b[rows_a[f][idx]], seeds_b, full_b[f]) for f, idx in draw.items()])
        return score(float(sb)) - score(float(sa))

    raw_a, raw_b = (np.mean([np.mean(v) for v in full.values()]) for full in (full_a, full_b))
    point = score(float(raw_b)) - score(float(raw_a))  # the runs' own scores: the mean over seeds and folds
    recorded: dict[int, float] = {}
    counter = iter(range(rounds))

    def recording(draw: Mapping[str, np.ndarray], seeds: Any) -> float:
        r = next(counter)
        value = diff_on(draw, seeds)
        recorded[r] = value
        return value

    sizes = {f: len(r) for f, r in rows_a.items()}
    lo, hi = bootstrap_interval(recording, sizes, rounds=rounds, seed=seed, alpha=alpha, n_seeds=n_seeds)
    return point, lo, hi, len(items_a), recorded


def seeds_paired(a: Predictions, b: Predictions, track: str) -> bool:
    """Whether two runs' track used the same probe seeds, or one probe each (nothing to resample then)."""
    return a.seeds(track) == b.seeds(track) or a.n_seeds(track) == b.n_seeds(track) == 1


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------


def find_results(folder: str | Path, protocol: str | None = None) -> dict[str, tuple[ResultRecord, Path]]:
    """{task: (result record, its JSON file)} of the single (encoder, protocol) run under ``folder``."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    found: dict[tuple[str, str], dict[str, tuple[ResultRecord, Path]]] = {}
    for path in sorted(folder.rglob("*.json")):
        if path.name == "summary.json":
            continue
        try:
            obj = read_json(path)
            if not is_result(obj):
                continue
            record = ResultRecord.from_dict(obj, source=path)
        except RecordFormatError as exc:
            raise CompareError(str(exc)) from exc
        if protocol is not None and record.protocol != protocol:
            continue
        found.setdefault((record.encoder_slug, record.protocol), {})[record.task] = (record, path)
    if not found:
        raise CompareError(f"{folder}: no result JSONs" + (f" under protocol {protocol!r}" if protocol else ""))
    if len(found) > 1:
        runs = ", ".join(f"{e} ({p})" for e, p in sorted(found))
        raise CompareError(f"{folder}: holds several runs ({runs}); give one <encoder>/<protocol> folder or --protocol")
    return next(iter(found.values()))


@dataclass
class Comparison:
    """All per-task differences of B against A, plus the weighted-average differences per track."""

    name_a: str
    name_b: str
    protocol: str
    tasks: list[TaskDifference]
    only_a: list[str]
    only_b: list[str]
    averages: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.name_a,
            "b": self.name_b,
            "protocol": self.protocol,
            "tasks": [t.to_dict() for t in self.tasks],
            "averages": self.averages,
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
        }

    def text(self) -> str:
        lines = [f"B − A, normalised scores (A = {self.name_a}, B = {self.name_b}, protocol {self.protocol})"]
        head = f"{'task':26s} {'track':5s} {'A':>7s} {'B':>7s} {'B−A':>8s}  {'95% paired CI':>19s}  verdict"
        lines += [head, "-" * len(head)]
        for t in self.tasks:
            ci = f"[{t.ci_low:+.3f}, {t.ci_high:+.3f}]" if np.isfinite(t.ci_low) else "-"
            note = f"  ({t.note})" if t.note else ""
            lines.append(
                f"{t.task:26s} {t.track:5s} {t.score_a:7.3f} {t.score_b:7.3f} {t.diff:+8.3f}  {ci:>19s}  "
                f"{t.verdict}{note}"
            )
        for avg in self.averages:
            ci = f"[{avg['ci_low']:+.3f}, {avg['ci_high']:+.3f}]" if np.isfinite(avg["ci_low"]) else "-"
            lines.append(
                f"weighted average {avg['group']} {avg['track']} ({avg['tasks']} tasks): {avg['diff']:+.3f} {ci} "
                f"{avg['verdict']}"
            )
        if self.only_a or self.only_b:
            lines.append(f"not compared: only in A: {self.only_a or '-'}; only in B: {self.only_b or '-'}")
        return "\n".join(lines)


def _verdict(lo: float, hi: float) -> str:
    if not np.isfinite(lo):
        return "no interval"
    return "B better" if lo > 0 else "A better" if hi < 0 else "within noise"


def _average_rows(diffs: list[TaskDifference], rounds: int, alpha: float) -> list[dict[str, Any]]:
    """Weighted-average B − A per track and group (all, public), with the interval from the joint rounds."""
    rows = []
    for track in sorted({d.track for d in diffs}):
        for group, keep in (("all", lambda d: True), ("public", lambda d: not d.private)):
            chosen = [d for d in diffs if d.track == track and keep(d)]
            if not chosen:
                continue
            point = weighted_average(ScoredTask(d.task, track, d.diff, d.weight) for d in chosen)
            lo = hi = float("nan")
            common = set.intersection(*(set(d.rounds) for d in chosen)) if all(d.rounds for d in chosen) else set()
            if common:
                values = [
                    weighted_average(ScoredTask(d.task, track, d.rounds[r], d.weight) for d in chosen)
                    for r in sorted(common)
                ]
                lo, hi = (float(v) for v in np.quantile(values, [alpha / 2, 1 - alpha / 2]))
            rows.append(
                {
                    "track": track,
                    "group": group,
                    "tasks": len(chosen),
                    "diff": point,
                    "ci_low": lo,
                    "ci_high": hi,
                    "verdict": _verdict(lo, hi),
                }
            )
    return rows


def compare_runs(
    a: str | Path, b: str | Path, protocol: str | None = None, rounds: int = 1000, alpha: float = 0.05
) -> Comparison:
    """Compare run folder ``b`` against ``a`` task by task (see the module docstring)."""
    runs_a, runs_b = find_results(a, protocol), find_results(b, protocol)
    first_a, first_b = next(iter(runs_a.values()))[0], next(iter(runs_b.values()))[0]
    pa, pb = first_a.protocol, first_b.protocol
    if pa != pb:
        raise CompareError(f"refusing to compare runs of different protocols: A is {pa!r}, B is {pb!r}")
    diffs = []
    for task in sorted(set(runs_a) & set(runs_b)):
        (ra, path_a), (rb, path_b) = runs_a[task], runs_b[task]
        if ra.task_fingerprint != rb.task_fingerprint or ra.task_version != rb.task_version:
            for track in sorted(set(ra.tracks) & set(rb.tracks)):
                diffs.append(_unpaired(ra, rb, track, "task declarations differ: not comparable"))
            continue
        pred_a, pred_b = predictions_path(path_a), predictions_path(path_b)
        have = pred_a.is_file() and pred_b.is_file()
        preds = (Predictions.read(pred_a), Predictions.read(pred_b)) if have else None
        for track in sorted(set(ra.tracks) & set(rb.tracks)):
            if preds is None or track not in preds[0].tracks or track not in preds[1].tracks:
                diffs.append(_unpaired(ra, rb, track, "no predictions.npz: no paired interval"))
                continue
            d = _unpaired(ra, rb, track, "" if seeds_paired(*preds, track) else "probe seeds differ: drawn per run")
            d.diff, d.ci_low, d.ci_high, d.items, d.rounds = paired_difference(
                preds[0], preds[1], track, rounds=rounds, seed=_seed(ra, track), alpha=alpha
            )
            diffs.append(d)
    return Comparison(
        name_a=first_a.encoder_slug,
        name_b=first_b.encoder_slug,
        protocol=pa,
        tasks=diffs,
        only_a=sorted(set(runs_a) - set(runs_b)),
        only_b=sorted(set(runs_b) - set(runs_a)),
        averages=_average_rows(diffs, rounds, alpha),
    )


def _seed(result: ResultRecord, track: str) -> int:
    """The task's seed, offset per task and track so that tasks are resampled independently."""
    return result.seed + zlib.crc32(f"{result.task}/{track}".encode())


def _unpaired(ra: ResultRecord, rb: ResultRecord, track: str, note: str) -> TaskDifference:
    ta, tb = ra.tracks[track], rb.tracks[track]
    return TaskDifference(
        task=ra.task,
        track=track,
        metric=ta.metric,
        weight=ra.weight,
        private=ra.private,
        score_a=ta.score,
        score_b=tb.score,
        diff=tb.score - ta.score,
        note=note,
    )


__all__ = [
    "FORMAT",
    "CompareError",
    "Comparison",
    "Predictions",
    "TaskDifference",
    "compare_runs",
    "paired_difference",
    "predictions_path",
    "seeds_paired",
    "write_predictions",
]
