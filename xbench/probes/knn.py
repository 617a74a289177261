"""The parameter-free kNN track (X-ARES ``KNN`` in ``xares/trainer.py``) on pooled clip vectors, searched with faiss.

k = 10 neighbours from the train split only, weights softmax(similarity / 0.07), class score =
sum of the weights of its neighbours, prediction = argmax.

Similarity by protocol:

* ``xbench`` (default): cosine — train and test vectors are each L2-normalised.
* ``xares``: X-ARES 0.1.3's computation — each test vector is L2-normalised, but the train matrix is
  normalised per feature dimension across the training set (it transposes before normalising), so
  the similarity is not a cosine. Published X-ARES kNN numbers come from this.
"""

from __future__ import annotations

import numpy as np

from xbench.core.enums import Protocol, choices

PROTOCOLS = choices(Protocol)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _unit_columns(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=0, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def knn_scores(
    train: np.ndarray,
    train_labels: np.ndarray,
    test: np.ndarray,
    num_classes: int,
    k: int = 10,
    temperature: float = 0.07,
    protocol: str = "xbench",
) -> np.ndarray:
    """Class scores ``[N_test, num_classes]`` of the weighted kNN vote."""
    import faiss

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown kNN protocol {protocol!r}; choose from {PROTOCOLS}")
    train = np.ascontiguousarray(train, dtype=np.float32)
    test = np.ascontiguousarray(test, dtype=np.float32)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(f"kNN needs [N, D] train and test matrices, got {train.shape} and {test.shape}")
    if len(train) == 0:
        raise ValueError("kNN: the train split is empty")
    labels = np.asarray(train_labels, dtype=np.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"kNN: train labels outside [0, {num_classes})")
    base = _unit_rows(train) if protocol == "xbench" else _unit_columns(train)
    queries = _unit_rows(test)
    k = min(k, len(base))
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    sims, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    logits = sims.astype(np.float64) / temperature
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    scores = np.zeros((len(test), num_classes), dtype=np.float64)
    np.add.at(scores, (np.arange(len(test))[:, None], labels[idx]), weights)
    return scores
