"""The embed stage: every split streams through the encoder once into the embedding cache.

Work units are independent and idempotent, so any number of workers can take them:

* protocol ``xbench`` (default): one unit per (task, split, shard). Clips are never zero-padded
  against each other: a batch holds clips of equal length only, so nothing from padding leaks
  into a clip's frames, a clip shorter than a crop is encoded at its true length, and every crop
  keeps its own key.
* protocol ``xares``: one unit per (task, split), reproducing X-ARES 0.1.3 where it changes
  numbers: batches of ``batch_size_encode`` in stream order, zero-padded to the longest clip,
  every clip stored with the batch's padded frame count, and only the first crop of each file in
  each batch kept (X-ARES loses the others to a key collision). Shards are read in sorted order.

A unit is committed by :func:`xbench.embed.cache.write_unit` (temp name, rename, done-marker
last); a rerun skips committed units whose key matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xbench._version import __version__
from xbench.core.enums import Protocol, choices
from xbench.data.shards import Clip, iter_clips, resolve_shards, sorted_shards
from xbench.embed.cache import is_complete, key_hash, write_unit
from xbench.encoder.contract import EncoderOutputError, HarnessedEncoder
from xbench.taskspec.config import TaskConfig

PROTOCOLS = choices(Protocol)
BUCKET_WINDOW = 256  # clips read ahead to group equal lengths (xbench protocol)


@dataclass(frozen=True)
class EmbedUnit:
    """One unit of embedding work and where its output goes."""

    task: str
    split: str
    shards: tuple[str, ...]
    path: Path
    key: dict[str, Any] = field(hash=False, compare=False)

    @property
    def key_hash(self) -> str:
        return key_hash(self.key)

    def done(self) -> bool:
        return is_complete(self.path, self.key_hash)


def split_names(task: TaskConfig) -> list[str]:
    """The distinct split (or fold) names whose shards a task needs, in order."""
    if task.k_fold_splits is not None:
        return [str(k) for k in task.k_fold_splits]
    names: list[str] = []
    for name in (task.train_split, task.valid_split, task.test_split):
        if name not in names:
            names.append(name)
    return names


def split_glob(task: TaskConfig, split: str) -> str:
    """The audio shard pattern of a split name (fold ids are matched as strings); see ``resolve_shards``."""
    for key, pattern in task.audio_tar_name_of_split.items():
        if str(key) == split:
            return pattern
    raise KeyError(f"task {task.name}: no shard pattern for split {split!r}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plan_units(
    task: TaskConfig,
    audio_dir: Path,
    unit_root: Path,
    encoder_key: dict[str, Any],
    protocol: str,
    cache_dtype: str = "float16",
) -> list[EmbedUnit]:
    """All embed units of ``task``; FileNotFoundError (naming task, split and folder) when a split has no shards
    or lacks one its pattern names, IsADirectoryError when it matches a folder."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
    units = []
    for split in split_names(task):
        pattern = split_glob(task, split)
        match = resolve_shards(audio_dir, pattern)
        if match.folders:
            raise IsADirectoryError(
                f"task {task.name}: shard pattern {pattern!r} of split {split!r} matches the folder "
                f"{match.folders[0]}, not a .tar shard file (move or rename it)"
            )
        if match.missing or not match.found:
            what = (
                f"{len(match.missing)} shard(s) named by {pattern!r} are missing (e.g. {match.missing[0].name})"
                if match.missing
                else f"no shards match {pattern!r}"
            )
            raise FileNotFoundError(
                f"task {task.name}: {what} for split {split!r} in {audio_dir} "
                f"(run `xbench download {task.name}` or place the shards there)"
            )
        shards = sorted_shards(match.found)
        groups = [shards] if protocol == "xares" else [[s] for s in shards]
        for group in groups:
            stem = "all" if protocol == "xares" else _safe(Path(group[0]).name)
            key = {
                "encoder": encoder_key,
                "task": task.name,
                "task_version": task.version,
                "task_fingerprint": task.fingerprint(),
                "split": split,
                "shards": [(Path(s).name, Path(s).stat().st_size) for s in group],
                "protocol": protocol,
                "cache_dtype": cache_dtype,
                "xbench_version": __version__,
            }
            path = unit_root / _safe(split) / f"{stem}.npz"
            units.append(EmbedUnit(task.name, split, tuple(group), path, key))
    return units


def _batches_equal_length(clips: Iterable[Clip], batch_size: int) -> Iterator[list[tuple[int, Clip]]]:
    """Batches of (position, clip) with equal true lengths, read ahead over a bounded window."""
    window: list[tuple[int, Clip]] = []

    def flush() -> Iterator[list[tuple[int, Clip]]]:
        by_len: dict[int, list[tuple[int, Clip]]] = {}
        for item in window:
            by_len.setdefault(item[1].num_samples, []).append(item)
        for items in by_len.values():
            for start in range(0, len(items), batch_size):
                yield items[start : start + batch_size]

    for pos, clip in enumerate(clips):
        window.append((pos, clip))
        if len(window) >= BUCKET_WINDOW:
            yield from flush()
            window = []
    yield from flush()


class NonFiniteEmbeddingError(EncoderOutputError):
    """The encoder returned NaN or Inf for a clip; the message names task, split, shard and clip key."""


def _encode(encoder: HarnessedEncoder, wave: torch.Tensor, unit: EmbedUnit, clips: list[Clip]) -> np.ndarray:
    """``encoder(wave)`` as numpy; :class:`NonFiniteEmbeddingError` naming the first clip with a NaN or Inf."""
    emb = encoder(wave).numpy()
    finite = np.isfinite(emb).reshape(len(clips), -1).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        bad = int((~np.isfinite(emb[row])).sum())
        raise NonFiniteEmbeddingError(
            f"task {unit.task}, split {unit.split}, shard {clips[row].shard}, key {clips[row].key!r}: the encoder "
            f"returned {bad} NaN/Inf value(s) of {emb[row].size} for this clip ({int((~finite).sum())} of "
            f"{len(clips)} clips in its batch); nothing of this unit was cached"
        )
    return emb


def _record(clip: Clip) -> dict[str, Any]:
    return {
        "key": clip.key,
        "source_key": clip.source_key,
        "crop_index": clip.crop_index,
        "num_samples": clip.num_samples,
        "meta": clip.meta,
    }


def embed_unit(
    encoder: HarnessedEncoder,
    unit: EmbedUnit,
    crop_length: float | None,
    batch_size: int,
    protocol: str,
    cache_dtype: str = "float16",
    progress: Any = None,
) -> int:
    """Encode one unit and commit it to the cache; returns the number of stored clips.

    A NaN or Inf in the encoder's output raises :class:`NonFiniteEmbeddingError` (and a NaN audio sample a
    :class:`xbench.data.shards.ShardError`) before anything of the unit is written: it stays not done.
    """
    clips = iter_clips(list(unit.shards), encoder.sampling_rate, crop_length)
    records: list[dict[str, Any]] = []
    frames: list[np.ndarray] = []
    if protocol == "xbench":
        out: dict[int, tuple[dict[str, Any], np.ndarray]] = {}
        for batch in _batches_equal_length(clips, batch_size):
            n = batch[0][1].num_samples
            wave = torch.stack([clip.waveform[:n] for _, clip in batch])
            emb = _encode(encoder, wave, unit, [clip for _, clip in batch])
            for row, (pos, clip) in enumerate(batch):
                out[pos] = (_record(clip), emb[row])
            if progress is not None:
                progress.update(len(batch))
        for pos in sorted(out):
            records.append(out[pos][0])
            frames.append(out[pos][1])
    else:
        pending: list[Clip] = []

        def flush() -> None:
            width = max(c.waveform.shape[0] for c in pending)
            wave = torch.zeros(len(pending), width)
            for row, clip in enumerate(pending):
                wave[row, : clip.waveform.shape[0]] = clip.waveform
            emb = _encode(encoder, wave, unit, pending)
            seen: set[str] = set()
            for row, clip in enumerate(pending):
                if clip.source_key in seen:  # X-ARES keeps one crop per file per batch
                    continue
                seen.add(clip.source_key)
                records.append(_record(clip))
                frames.append(emb[row])
            if progress is not None:
                progress.update(len(pending))
            pending.clear()

        for clip in clips:
            pending.append(clip)
            if len(pending) == batch_size:
                flush()
        if pending:
            flush()
    write_unit(unit.path, records, frames, encoder.output_dim, unit.key, cache_dtype)
    return len(records)
