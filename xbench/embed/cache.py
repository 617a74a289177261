"""On-disk embedding cache: one ``.npz`` per work unit, committed by a done-marker written last.

A unit file holds, for every clip (or crop): key, source key, crop index, true length, the json
label record, its frames (float16 by default, concatenated, with offsets) and its pooled vector
(float32 mean of its stored frames). It is written to a temporary name and renamed; then
``<unit>.done.json`` is written (also via rename) carrying the cache key hash. A unit without a
marker, or whose marker holds another hash, is treated as missing and recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xbench.core.atomic_io import atomic_write_bytes, atomic_write_json
from xbench.core.enums import CacheDtype, choice

CACHE_FORMAT = 1
__all__ = ["atomic_write_bytes", "atomic_write_json", "write_unit", "read_unit", "is_complete", "key_hash"]


def key_hash(key: dict[str, Any]) -> str:
    """sha256 of a cache key record (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


@dataclass
class EmbeddedUnit:
    """Embeddings of one unit (a shard, or a whole split under the xares protocol)."""

    keys: list[str]
    source_keys: list[str]
    crop_index: np.ndarray
    num_samples: np.ndarray
    meta: list[Any]
    frames: np.ndarray  # [sum T_i, D]
    offsets: np.ndarray  # [N + 1]
    pooled: np.ndarray  # [N, D] float32

    def __len__(self) -> int:
        return len(self.keys)

    def clip_frames(self, i: int) -> np.ndarray:
        """Frames ``[T_i, D]`` of clip ``i``."""
        return self.frames[self.offsets[i] : self.offsets[i + 1]]


def marker_path(unit_path: Path) -> Path:
    return unit_path.with_name(unit_path.name + ".done.json")


def is_complete(unit_path: Path, expected_hash: str) -> bool:
    """True when the unit file exists and its done-marker carries ``expected_hash``."""
    marker = marker_path(unit_path)
    if not unit_path.is_file() or not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("key_hash") == expected_hash
    except (OSError, ValueError):
        return False


def write_unit(
    unit_path: Path,
    clips: list[dict[str, Any]],
    frames: list[np.ndarray],
    dim: int,
    key: dict[str, Any],
    dtype: str = "float16",
    extra: dict[str, Any] | None = None,
) -> None:
    """Write one unit and then its done-marker. ``clips`` hold key/source_key/crop_index/num_samples/meta."""
    choice(CacheDtype, dtype, "cache dtype")
    lengths = [len(f) for f in frames]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    stacked = np.concatenate(frames).astype(np.float32) if frames else np.zeros((0, dim), np.float32)
    pooled = np.stack([f.astype(np.float64).mean(0) if len(f) else np.zeros(dim) for f in frames]).astype(np.float32)
    if not frames:
        pooled = np.zeros((0, dim), np.float32)
    buf = io.BytesIO()
    np.savez(
        buf,
        keys=np.array([c["key"] for c in clips], dtype=str),
        source_keys=np.array([c["source_key"] for c in clips], dtype=str),
        crop_index=np.array([-1 if c["crop_index"] is None else c["crop_index"] for c in clips], dtype=np.int64),
        num_samples=np.array([c["num_samples"] for c in clips], dtype=np.int64),
        meta=np.array([json.dumps(c["meta"], sort_keys=True) for c in clips], dtype=str),
        frames=stacked.astype(dtype),
        offsets=offsets,
        pooled=pooled,
    )
    atomic_write_bytes(unit_path, buf.getvalue())
    atomic_write_json(
        marker_path(unit_path),
        {"format": CACHE_FORMAT, "key_hash": key_hash(key), "key": key, "clips": len(clips), **(extra or {})},
    )


def read_unit(unit_path: Path) -> EmbeddedUnit:
    """Load a committed unit (the caller checks :func:`is_complete` first)."""
    with np.load(unit_path, allow_pickle=False) as z:
        return EmbeddedUnit(
            keys=z["keys"].tolist(),
            source_keys=z["source_keys"].tolist(),
            crop_index=z["crop_index"],
            num_samples=z["num_samples"],
            meta=[json.loads(m) for m in z["meta"].tolist()],
            frames=z["frames"],
            offsets=z["offsets"],
            pooled=z["pooled"],
        )


def subset_unit(unit: EmbeddedUnit, indices: np.ndarray) -> EmbeddedUnit:
    """The items ``indices`` of ``unit``, in that order, as a unit of their own."""
    idx = np.asarray(indices, dtype=np.int64)
    lengths = np.diff(unit.offsets)[idx]
    dims = unit.frames.shape[1]
    frames = [unit.clip_frames(int(i)) for i in idx]
    return EmbeddedUnit(
        keys=[unit.keys[i] for i in idx],
        source_keys=[unit.source_keys[i] for i in idx],
        crop_index=unit.crop_index[idx],
        num_samples=unit.num_samples[idx],
        meta=[unit.meta[i] for i in idx],
        frames=np.concatenate(frames) if int(lengths.sum()) else np.zeros((0, dims), unit.frames.dtype),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        pooled=unit.pooled[idx],
    )


def concat_units(units: list[EmbeddedUnit]) -> EmbeddedUnit:
    """Join units in order into one."""
    if not units:
        raise ValueError("no embedded units to join")
    dims = units[0].frames.shape[1]
    offsets = [np.array([0], dtype=np.int64)]
    base = 0
    for u in units:
        offsets.append(u.offsets[1:] + base)
        base += int(u.offsets[-1])
    return EmbeddedUnit(
        keys=[k for u in units for k in u.keys],
        source_keys=[k for u in units for k in u.source_keys],
        crop_index=np.concatenate([u.crop_index for u in units]),
        num_samples=np.concatenate([u.num_samples for u in units]),
        meta=[m for u in units for m in u.meta],
        frames=np.concatenate([u.frames for u in units]) if base else np.zeros((0, dims), units[0].frames.dtype),
        offsets=np.concatenate(offsets),
        pooled=np.concatenate([u.pooled for u in units]),
    )
