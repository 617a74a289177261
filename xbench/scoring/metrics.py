"""Task metrics with X-ARES 0.1.3's semantics (``xares/metrics.py``), on plain numpy / torch arrays.

Every function returns the raw metric; :mod:`xbench.scoring.scores` maps raw metrics to 0–1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
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


def segment_pool(binary: np.ndarray, window: int) -> np.ndarray:
    """Max-pool ``[T, C]`` over non-overlapping windows of ``window`` frames (trailing partial dropped)."""
    segments = binary.shape[0] // window
    return binary[: segments * window].reshape(segments, window, -1).max(axis=1)


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

    window = math.ceil(segment_length_in_s / (hop_size_in_ms / 1000.0))
    preds, tars = [], []
    for logit, target in zip(logits, targets, strict=True):
        if logit.shape != target.shape:
            raise ValueError(f"segment_f1: logits {logit.shape} and targets {target.shape} differ")
        binary = np.round(1.0 / (1.0 + np.exp(-np.asarray(logit, dtype=np.float64))))
        preds.append(segment_pool(binary, window))
        tars.append(segment_pool(np.asarray(target), window))
    pred = np.concatenate(preds).astype(np.int64)
    tar = np.concatenate(tars).astype(np.int64)
    return float(f1_score(tar, pred, average=average, zero_division=0.0))


def retrieval_recall_at_1(audio: np.ndarray, text: np.ndarray, captions_per_audio: int) -> float:
    """Clotho R@1, the mean of audio→text and text→audio recall at rank 1.

    ``audio [N, D]`` holds one row per caption (each audio repeated ``captions_per_audio`` times, in
    order) and ``text [N, D]`` the caption embeddings; similarities are cosine.
    """
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


def equal_error_rate(scores: np.ndarray, targets: np.ndarray) -> float:
    """EER from the ROC curve (mean of FPR and FNR at the point where they are closest)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(targets), np.asarray(scores))
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


CLIP_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "mAP": mean_average_precision,
    "EER": lambda s, t: equal_error_rate(np.asarray(s)[:, -1] if np.ndim(s) == 2 else s, t),
    "MSE": lambda s, t: float(np.mean((np.asarray(s).squeeze() - np.asarray(t)) ** 2)),
    "MAE": lambda s, t: float(np.mean(np.abs(np.asarray(s).squeeze() - np.asarray(t)))),
}
