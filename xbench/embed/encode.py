"""The embed stage: every split streams through the encoder once into the embedding cache.

Work units are independent and idempotent, so any number of workers can take them:

* protocol ``xbench`` (default): one unit per (task, split, shard). By default clips are never
  zero-padded against each other: a batch holds clips of equal length only, so nothing from padding
  leaks into a clip's frames, a clip shorter than a crop is encoded at its true length, and every crop
  keeps its own key. With ``max_padding`` > 0 (length buckets) the clips of a read-ahead window are
  sorted by length and batched while padding stays within that share of the batch's samples; each
  clip keeps only the frames computed from its own samples (:func:`xbench.encoder.contract.real_frames`).
* protocol ``xares``: one unit per (task, split), reproducing X-ARES 0.1.3 where it changes
  numbers: batches of ``batch_size_encode`` in stream order, zero-padded to the longest clip,
  every clip stored with the batch's padded frame count, and only the first crop of each file in
  each batch kept (X-ARES loses the others to a key collision). Shards are read in sorted order.

A unit is committed by :func:`xbench.embed.cache.write_unit` (temp name, rename, done-marker
last); a rerun skips committed units whose key matches. Clips are decoded in ``DataLoader`` workers
(:mod:`xbench.embed.loader`) when ``workers`` > 0, in the same order. A batch that runs the device out of
memory is split in halves and retried, and later batches of the unit keep the smaller size; the unit's
marker records it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xbench._version import __version__
from xbench.core.enums import Protocol, choices
from xbench.data.shards import Clip, resolve_shards, sorted_shards
from xbench.embed.cache import is_complete, key_hash, write_unit
from xbench.embed.loader import read_clips
from xbench.encoder.contract import EncoderOutputError, HarnessedEncoder, real_frames
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
    max_padding: float = 0.0,
) -> list[EmbedUnit]:
    """All embed units of ``task``; FileNotFoundError (naming task, split and folder) when a split has no shards
    or lacks one its pattern names, IsADirectoryError when it matches a folder. Length buckets with padding
    (``max_padding`` > 0, xbench protocol) enter the unit's key."""
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
                **({"max_padding": max_padding} if max_padding > 0 and protocol == "xbench" else {}),
            }
            path = unit_root / _safe(split) / f"{stem}.npz"
            units.append(EmbedUnit(task.name, split, tuple(group), path, key))
    return units


def length_batches(
    clips: Iterable[Clip], batch_size: int, max_padding: float = 0.0
) -> Iterator[list[tuple[int, Clip]]]:
    """Batches of (position, clip) for the xbench protocol, read ahead over a window of :data:`BUCKET_WINDOW`
    clips: the window's clips by true length, longest first (ties in reading order), each batch filled while
    its zero padding (to its longest clip) stays at most ``max_padding`` of its samples. ``0`` batches equal
    lengths only, and a batch leaves as soon as it is full (the same batches, so the encoder need not wait
    for the window)."""
    window: list[tuple[int, Clip]] = []
    groups: dict[int, list[tuple[int, Clip]]] = {}  # max_padding 0: the window's clips by length, not yet sent
    sent: set[int] = set()

    def flush() -> Iterator[list[tuple[int, Clip]]]:
        batch: list[tuple[int, Clip]] = []
        total = 0
        for item in sorted((i for i in window if i[0] not in sent), key=lambda item: -item[1].num_samples):
            n = item[1].num_samples
            if batch:
                longest = batch[0][1].num_samples
                if len(batch) == batch_size or longest * (len(batch) + 1) - (total + n) > max_padding * longest * (
                    len(batch) + 1
                ):
                    yield batch
                    batch, total = [], 0
            batch.append(item)
            total += n
        if batch:
            yield batch

    for pos, clip in enumerate(clips):
        window.append((pos, clip))
        if max_padding == 0:
            group = groups.setdefault(clip.num_samples, [])
            group.append((pos, clip))
            if len(group) == batch_size:
                yield group
                sent.update(p for p, _ in group)
                groups[clip.num_samples] = []
        if len(window) >= BUCKET_WINDOW:
            yield from flush()
            window, groups, sent = [], {}, set()
    yield from flush()


class NonFiniteEmbeddingError(EncoderOutputError):
    """The encoder returned NaN or Inf for a clip; the message names task, split, shard and clip key."""


def _encode(encoder: HarnessedEncoder, wave: torch.Tensor, unit: EmbedUnit, clips: list[Clip]) -> np.ndarray:
    """``encoder(wave)`` as float32 numpy (a raw encoder may return bfloat16, which numpy lacks);
    :class:`NonFiniteEmbeddingError` naming the first clip with a NaN or Inf."""
    emb = encoder(wave).to(torch.float32).numpy()
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


@dataclass(frozen=True)
class EmbedSettings:
    """How a unit is embedded: encoder batch size, protocol, cache dtype, crops, decoding workers and the
    padding share of length buckets (xbench protocol; ``0`` batches equal lengths only)."""

    batch_size: int
    protocol: str = "xbench"
    cache_dtype: str = "float16"
    crop_length: float | None = None
    workers: int = 0
    max_padding: float = 0.0


@dataclass
class EmbedStats:
    """What embedding one unit took: stored clips, encoder calls, their padded and real samples, and the
    batch size an out-of-memory error halved the batches to (``None``: never)."""

    clips: int = 0
    forward_calls: int = 0
    padded_samples: int = 0
    real_samples: int = 0
    oom_batch_size: int | None = None

    def marker(self) -> dict[str, Any]:
        """The stats as the unit's done-marker records them."""
        return {"embed_stats": asdict(self)}


OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


class _Batcher:
    """Encodes batches of clips for one unit; on an out-of-memory error splits the batch in halves and
    keeps the halved size for the unit's later batches (each part zero-padded to the whole batch's width,
    so a clip's input does not depend on the split)."""

    def __init__(self, encoder: HarnessedEncoder, unit: EmbedUnit, batch_size: int, stats: EmbedStats) -> None:
        self.encoder, self.unit, self.limit, self.stats = encoder, unit, batch_size, stats

    def __call__(self, clips: list[Clip], lengths: list[int], width: int) -> list[np.ndarray]:
        """Each clip's frames ``[T, D]`` from its first ``lengths[i]`` samples, zero-padded to ``width``."""
        out: list[np.ndarray] = []
        start = 0
        while start < len(clips):
            part = slice(start, start + self.limit)
            wave = torch.zeros(len(clips[part]), width)
            for row, (clip, n) in enumerate(zip(clips[part], lengths[part], strict=True)):
                wave[row, :n] = clip.waveform[:n]
            try:
                emb = _encode(self.encoder, wave, self.unit, clips[part])
            except OUT_OF_MEMORY:
                if self.limit == 1:
                    raise
                self.limit = max(1, min(self.limit, len(clips[part])) // 2)
                self.stats.oom_batch_size = self.limit
                if self.encoder.device_type == "cuda":
                    torch.cuda.empty_cache()
                continue  # the same clips again, in smaller parts
            self.stats.forward_calls += 1
            self.stats.padded_samples += wave.numel()
            self.stats.real_samples += sum(lengths[part])
            out.extend(emb)
            start += len(clips[part])
        return out


def embed_unit(
    encoder: HarnessedEncoder,
    unit: EmbedUnit,
    settings: EmbedSettings,
    progress: Any = None,
) -> EmbedStats:
    """Encode one unit and commit it to the cache; returns what it took (its stats are in the marker too).

    A NaN or Inf in the encoder's output raises :class:`NonFiniteEmbeddingError` (and a NaN audio sample a
    :class:`xbench.data.shards.ShardError`) before anything of the unit is written: it stays not done.
    """
    # workers decode up to a bucket window ahead, so the next window is ready when the encoder gets to it
    prefetch = -(-max(BUCKET_WINDOW, settings.batch_size) // max(1, settings.workers))
    clips = read_clips(unit.shards, encoder.sampling_rate, settings.crop_length, settings.workers, prefetch)
    stats = EmbedStats()
    encode = _Batcher(encoder, unit, settings.batch_size, stats)
    records: list[dict[str, Any]] = []
    frames: list[np.ndarray] = []
    if settings.protocol == "xbench":
        out: dict[int, tuple[dict[str, Any], np.ndarray]] = {}
        for batch in length_batches(clips, settings.batch_size, settings.max_padding):
            members = [clip for _, clip in batch]
            lengths = [clip.num_samples for clip in members]
            emb = encode(members, lengths, lengths[0])  # the longest first
            for (pos, clip), clip_frames in zip(batch, emb, strict=True):
                out[pos] = (_record(clip), clip_frames[: real_frames(len(clip_frames), clip.num_samples, lengths[0])])
            if progress is not None:
                progress.update(len(batch))
        for pos in sorted(out):
            records.append(out[pos][0])
            frames.append(out[pos][1])
    else:
        pending: list[Clip] = []

        def flush() -> None:
            lengths = [c.waveform.shape[0] for c in pending]
            emb = encode(pending, lengths, max(lengths))
            seen: set[str] = set()
            for clip, clip_frames in zip(pending, emb, strict=True):
                if clip.source_key in seen:  # X-ARES keeps one crop per file per batch
                    continue
                seen.add(clip.source_key)
                records.append(_record(clip))
                frames.append(clip_frames)
            if progress is not None:
                progress.update(len(pending))
            pending.clear()

        for clip in clips:
            pending.append(clip)
            if len(pending) == settings.batch_size:
                flush()
        if pending:
            flush()
    stats.clips = len(records)
    write_unit(unit.path, records, frames, encoder.output_dim, unit.key, settings.cache_dtype, stats.marker())
    return stats
