"""The metric table, and task metrics with X-ARES 0.1.3's semantics (``xares/metrics.py``).

:data:`METRICS` is the one table of metrics: each :class:`Metric` has its name, its function, what that
function takes (:data:`INPUTS`), its default raw bounds and its direction. Task validation
(:class:`xbench.taskspec.config.TaskConfig`), normalisation to 0–1 (:func:`xbench.scoring.scores.normalise`
with a task's resolved bounds) and ``xbench compare`` read bounds and direction from it; a task's own
``metric_bounds`` / ``higher_is_better`` override the defaults (:meth:`Metric.normalisation`). A new
metric is one :func:`register_metric` call.

Every function returns the raw metric. This module imports numpy only (sklearn and torch are imported
inside the functions that need them), so declaring tasks does not import torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def accuracy(scores: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor) -> float:
    """Top-1 accuracy of ``scores [N, C]`` (argmax) against integer ``targets [N]``."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    if len(targets) == 0:
        raise ValueError("accuracy of an empty test set")
    return float((scores.argmax(axis=-1) == targets).mean())


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro-averaged average precision over classes (sklearn), on raw scores, as X-ARES's mAP."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(np.asarray(targets), np.asarray(scores), average="macro"))


def frame_mean_average_precision(logits: Sequence[np.ndarray], targets: Sequence[np.ndarray], **_: Any) -> float:
    """X-ARES's ``frame_mAP``: macro AP over the frames of all clips (``[T, C]`` per clip) flattened together."""
    return mean_average_precision(np.concatenate([np.asarray(x) for x in logits]), np.concatenate(targets))


def segment_pool(binary: np.ndarray, window: int) -> np.ndarray:
    """Max-pool ``[T, C]`` over non-overlapping windows of ``window`` frames (trailing partial dropped)."""
    segments = binary.shape[0] // window
    if segments == 0:  # a clip shorter than one segment has none (reshape cannot infer the class axis of 0 rows)
        return binary[:0].reshape(0, *binary.shape[1:])
    return binary[: segments * window].reshape(segments, window, -1).max(axis=1)


def _segments(
    logits: Sequence[np.ndarray], targets: Sequence[np.ndarray], hop_size_in_ms: float, segment_length_in_s: float
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per clip, the X-ARES segments ``(predicted, true)`` as booleans ``[S, C]``: sigmoid, round at 0.5, then
    predictions and targets max-pooled over segments of ``segment_length_in_s``."""
    window = math.ceil(segment_length_in_s / (hop_size_in_ms / 1000.0))
    for logit, target in zip(logits, targets, strict=True):
        if logit.shape != target.shape:
            raise ValueError(f"segment F1: logits {logit.shape} and targets {target.shape} differ")
        binary = np.round(1.0 / (1.0 + np.exp(-np.asarray(logit, dtype=np.float64))))
        yield segment_pool(binary, window) > 0, segment_pool(np.asarray(target), window) > 0


def segment_counts(
    logits: Sequence[np.ndarray], targets: Sequence[np.ndarray], hop_size_in_ms: float, segment_length_in_s: float
) -> np.ndarray:
    """Per clip and class, the segment-level ``(true positives, false positives, false negatives)``: ``[N, C, 3]``.

    The segments of :func:`segment_f1`; summed over any set of clips they give that set's segment F1 through
    :func:`f1_from_counts`, so a bootstrap round costs a sum instead of re-pooling every drawn clip.
    """
    counts = [
        np.stack([(pred & true).sum(0), (pred & ~true).sum(0), (~pred & true).sum(0)], axis=-1)
        for pred, true in _segments(logits, targets, hop_size_in_ms, segment_length_in_s)
    ]
    return np.stack(counts).astype(np.int64)


def f1_from_counts(counts: np.ndarray, average: str) -> np.ndarray:
    """F1 from summed ``(tp, fp, fn)`` counts ``[..., C, 3]``: ``macro`` (per class, then the mean over classes) or
    ``micro`` (classes pooled); ``2 tp / (2 tp + fp + fn)``, 0 where a class has no positive at all (sklearn's
    ``f1_score`` with ``zero_division=0`` on the same segments)."""
    counts = np.asarray(counts, dtype=np.float64)
    if average == "micro":
        counts = counts.sum(axis=-2)
    elif average != "macro":
        raise ValueError(f"f1_from_counts: average must be 'macro' or 'micro', not {average!r}")
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return f1.mean(axis=-1) if average == "macro" else f1


def segment_f1(
    logits: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    hop_size_in_ms: float,
    segment_length_in_s: float,
    average: str,
) -> float:
    """X-ARES segment F1: sigmoid, round at 0.5, max-pool predictions and targets over segments, F1.

    ``logits`` and ``targets`` are per-clip ``[T, C]`` arrays of equal length per clip.
    """
    from sklearn.metrics import f1_score

    preds, tars = zip(*_segments(logits, targets, hop_size_in_ms, segment_length_in_s), strict=True)
    pred = np.concatenate(preds).astype(np.int64)
    tar = np.concatenate(tars).astype(np.int64)
    return float(f1_score(tar, pred, average=average, zero_division=0.0))


def retrieval_recall_at_1(audio: np.ndarray, text: np.ndarray, captions_per_audio: int) -> float:
    """Clotho R@1, the mean of audio→text and text→audio recall at rank 1.

    ``audio [N, D]`` holds one row per caption (each audio repeated ``captions_per_audio`` times, in
    order) and ``text [N, D]`` the caption embeddings; similarities are cosine.
    """
    import torch

    a = torch.nn.functional.normalize(torch.as_tensor(audio, dtype=torch.float64), dim=1)
    t = torch.nn.functional.normalize(torch.as_tensor(text, dtype=torch.float64), dim=1)
    k = captions_per_audio
    if len(a) % k:
        raise ValueError(f"{len(a)} rows is not a multiple of {k} captions per audio")
    clips = a[::k]  # one row per audio
    sim = clips @ t.T  # [n_audio, n_text]
    owner = torch.arange(len(t)) // k
    a2t = (owner[sim.argmax(dim=1)] == torch.arange(len(clips))).double().mean()
    t2a = (sim.argmax(dim=0) == owner).double().mean()
    return float((a2t + t2a) / 2)


def _edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus-level WER after lower-casing, words split on whitespace (jiwer's default measure)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    errors = words = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = ref.lower().split(), hyp.lower().split()
        errors += _edit_distance(r, h)
        words += len(r)
    if words == 0:
        raise ValueError("word_error_rate: the references hold no words")
    return errors / words


def inverse_word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """iWER = max(0, 1 − corpus WER), X-ARES's ``WER_inv``."""
    return max(0.0, 1.0 - word_error_rate(references, hypotheses))


def detection_scores(scores: np.ndarray | torch.Tensor) -> np.ndarray:
    """One score per item, higher meaning class 1: ``[N]`` as is, ``[N, 1]`` squeezed, ``[N, 2]`` as ``s1 − s0``.

    ``s1 − s0`` is the log-odds of class 1 for a 2-way softmax probe and monotone in p(class 1) for
    probabilities, so the ROC is that of the probe's own decision.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        return s[:, 1] - s[:, 0]
    if s.ndim == 2 and s.shape[1] == 1:
        return s[:, 0]
    if s.ndim == 1:
        return s
    raise ValueError(f"detection scores need shape [N], [N, 1] or [N, 2], got {list(s.shape)}")


def equal_error_rate(scores: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor) -> float:
    """EER: the rate where false positives equal false negatives, on the ROC linearly interpolated.

    ``scores`` as :func:`detection_scores` takes them, ``targets`` 0/1 (1 = the detected class, e.g. spoof).
    On sklearn's ROC (every threshold kept) ``FNR − FPR`` falls from 1 to −1; the EER is the FPR where
    the straight line between the two ROC points around the sign change crosses ``FNR = FPR`` (on a
    vertical ROC step, where FPR is constant, that FPR). Perfect scores give 0, inverted scores 1,
    uninformative ones 0.5. (The ASVspoof toolkits' ``compute_eer`` instead averages FNR and FPR at the
    threshold where they are closest; both agree as the test set grows.)
    """
    from sklearn.metrics import roc_curve

    y = np.asarray(targets).astype(np.int64).ravel()
    s = detection_scores(scores)
    if len(s) != len(y):
        raise ValueError(f"EER: {len(s)} scores but {len(y)} targets")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("EER needs 0/1 targets")
    if y.min(initial=1) == y.max(initial=0):
        raise ValueError("EER needs both classes among the targets")
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    gap = (1.0 - tpr) - fpr  # non-increasing: 1 at (0, 0), -1 at (1, 1)
    j = int(np.argmax(gap <= 0))  # first ROC point at or past the crossing
    if gap[j] == 0:
        return float(fpr[j])
    i = j - 1
    t = gap[i] / (gap[i] - gap[j])
    return float(fpr[i] + t * (fpr[j] - fpr[i]))


def mean_squared_error(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean of ``(prediction − target)²``, predictions ``[N]`` or ``[N, 1]``."""
    return float(np.mean((np.asarray(scores).squeeze() - np.asarray(targets)) ** 2))


def mean_absolute_error(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean of ``|prediction − target|``, predictions ``[N]`` or ``[N, 1]``."""
    return float(np.mean(np.abs(np.asarray(scores).squeeze() - np.asarray(targets))))


# -- the metric table --------------------------------------------------------------------------------

INPUTS: dict[str, str] = {
    "scores": "fn(scores [N, C] (or [N]), targets [N] class indices or [N, C] multi-hot) — clip probes",
    "frames": "fn(logits, targets, hop_size_in_ms=..., **metric_args), per-clip [T, C] arrays — frame probes",
    "embeddings": "fn(audio [N, D], text [N, D], captions_per_audio) — audio-text retrieval",
    "transcripts": "fn(references, hypotheses) — speech recognition",
}
"""What a metric's function takes, by :attr:`Metric.inputs`."""

_METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Metric:
    """One metric: its function, the inputs it takes, default raw ``bounds`` and direction.

    ``bounds=None``: the metric has no natural range (MSE, MAE); a task using it must declare
    ``metric_bounds``. The 0–1 score is ``(raw − lo) / (hi − lo)``, flipped when lower is better, clamped.
    """

    name: str
    fn: Callable[..., float]
    inputs: str
    bounds: tuple[float, float] | None
    higher_is_better: bool
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _METRIC_NAME.match(self.name):
            raise ValueError(f"metric name {self.name!r} must match {_METRIC_NAME.pattern}")
        if not callable(self.fn):
            raise ValueError(f"metric {self.name!r}: fn must be callable")
        if self.inputs not in INPUTS:
            raise ValueError(f"metric {self.name!r}: inputs {self.inputs!r} is not one of {sorted(INPUTS)}")
        if not isinstance(self.higher_is_better, bool):
            raise ValueError(f"metric {self.name!r}: higher_is_better must be a bool")
        if self.bounds is not None:
            lo, hi = self.bounds
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"metric {self.name!r}: bounds must be finite with lo < hi, got {self.bounds!r}")
            object.__setattr__(self, "bounds", (float(lo), float(hi)))

    def normalisation(
        self, bounds: tuple[float, float] | None = None, higher_is_better: bool | None = None
    ) -> tuple[tuple[float, float] | None, bool]:
        """(bounds, higher_is_better) of a task: its own where declared, else this metric's defaults."""
        return (
            self.bounds if bounds is None else bounds,
            self.higher_is_better if higher_is_better is None else higher_is_better,
        )


METRICS: dict[str, Metric] = {}
"""Every metric by name: X-ARES 0.1.3's ``ALL_METRICS`` keys plus ``WER``."""


def register_metric(metric: Metric, replace: bool = False) -> Metric:
    """Add ``metric`` to :data:`METRICS` (a name already there is an error unless ``replace``)."""
    if metric.name in METRICS and not replace:
        raise ValueError(f"metric {metric.name!r} is already registered")
    METRICS[metric.name] = metric
    return metric


def get_metric(name: str) -> Metric:
    """The table entry of ``name``; ``KeyError`` naming the known metrics."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r} (known: {', '.join(sorted(METRICS))})") from None


for _metric in (
    Metric("accuracy", accuracy, "scores", (0.0, 1.0), True, "top-1 accuracy"),
    Metric("mAP", mean_average_precision, "scores", (0.0, 1.0), True, "macro average precision"),
    Metric("frame_mAP", frame_mean_average_precision, "frames", (0.0, 1.0), True, "macro AP over all frames"),
    Metric(
        "segmentf1_macro", partial(segment_f1, average="macro"), "frames", (0.0, 1.0), True, "segment F1, macro"
    ),
    Metric(
        "segmentf1_micro", partial(segment_f1, average="micro"), "frames", (0.0, 1.0), True, "segment F1, micro"
    ),
    Metric("recallatk_r1", retrieval_recall_at_1, "embeddings", (0.0, 1.0), True, "mean of a→t and t→a R@1"),
    Metric("WER", word_error_rate, "transcripts", (0.0, 1.0), False, "corpus WER; scored max(0, 1 − WER)"),
    Metric("WER_inv", inverse_word_error_rate, "transcripts", (0.0, 1.0), True, "X-ARES's max(0, 1 − WER)"),
    # (0, 1) as the ICME 2025 challenge's normalisation gives EER: score = 1 − EER, so chance (EER 0.5)
    # scores 0.5 like chance accuracy on a binary task; a task may declare metric_bounds=(0, 0.5) instead
    Metric("EER", equal_error_rate, "scores", (0.0, 1.0), False, "equal error rate, interpolated ROC"),
    Metric("MAE", mean_absolute_error, "scores", None, False, "mean absolute error; tasks declare bounds"),
    Metric("MSE", mean_squared_error, "scores", None, False, "mean squared error; tasks declare bounds"),
):
    register_metric(_metric)
del _metric


class _MetricFunctions(Mapping[str, Callable[..., float]]):
    """A live read-only view {name: fn} of the table's metrics that take the given inputs."""

    def __init__(self, inputs: str) -> None:
        self.inputs = inputs

    def __getitem__(self, name: str) -> Callable[..., float]:
        metric = METRICS.get(name)
        if metric is None or metric.inputs != self.inputs:
            raise KeyError(name)
        return metric.fn

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, m in METRICS.items() if m.inputs == self.inputs])

    def __len__(self) -> int:
        return sum(1 for m in METRICS.values() if m.inputs == self.inputs)


CLIP_METRICS: Mapping[str, Callable[..., float]] = _MetricFunctions("scores")
"""{name: fn(scores, targets)} of the table's clip-probe metrics (a live view of :data:`METRICS`)."""
