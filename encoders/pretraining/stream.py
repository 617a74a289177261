"""A deterministic, resumable stream of fixed-length audio crops from X-ARES shards, mixed over weighted sources.

Each source (one or more shard files) is read in endless epochs: epoch ``e`` visits the source's shards
in an order drawn from ``(seed, source, e)`` and passes the samples through a shuffle buffer drawn from
the same seed, as WebDataset pipelines do. The mixed stream numbers its items ``0, 1, 2, ...``; item
``i`` comes from a source drawn with probability proportional to the sources' weights (OpenBEATs'
multi-domain mixing) and gets its own seed ``mix_seed(seed, i)``, which fixes its crop offset and,
through :class:`~xbench.encoders.training.RowRandom`, every random choice a recipe makes for it.

Under DDP every process walks the same item sequence and decodes only its own rows of each global
batch (``rank * batch_size`` onwards), so two processes with batch ``B`` see exactly the clips, crops and
masks of one process with batch ``2 B``. :meth:`AudioStream.state_dict` is the position (items taken,
and each source's epoch and offset); restoring it replays the raw tar members up to that point without
decoding them.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from xbench.data.resample import resample
from xbench.data.shards import ShardSample, iter_samples, load_sample, resolve_shards
from xbench.encoders.training import mix_seed

_SOURCE_SALT = 0x5EED5
_CROP_SALT = 0xC409
_NAMED = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_.-]*)(?::(?P<weight>[0-9]*\.?[0-9]+))?=(?P<pattern>.+)$")
DEFAULT_SOURCE = "data"


class DataSpecError(ValueError):
    """A ``--data`` value names no shard, or a source is empty; the message names it."""


@dataclass(frozen=True)
class Source:
    """One data source: its name, its shard files (sorted) and its mixing weight."""

    name: str
    shards: tuple[str, ...]
    weight: float = 1.0


def _resolve(pattern: str) -> list[str]:
    path = Path(pattern).expanduser()
    if path.is_dir():
        found = sorted(str(p) for p in path.glob("*.tar"))
    else:
        match = resolve_shards(path.parent, path.name)
        if match.missing:
            raise DataSpecError(f"--data {pattern}: {match.missing[0]} does not exist")
        found = [str(p) for p in match.found]
    if not found:
        raise DataSpecError(f"--data {pattern}: no shard matches")
    return found


def parse_sources(specs: Sequence[str], weights: dict[str, float] | None = None) -> list[Source]:
    """Sources of ``--data`` values, in order of first mention.

    A value is a shard file, a folder of ``*.tar``, or a pattern with ``*`` globs and ``{a,b}`` /
    ``{000..009}`` braces; ``NAME=PATTERN`` puts it in source ``NAME`` and ``NAME:WEIGHT=PATTERN`` also
    sets its mixing weight (default: ``weights[NAME]``, else 1). Unnamed values form one source, ``data``.
    """
    shards: dict[str, list[str]] = {}
    given: dict[str, float] = {}
    for spec in specs:
        match = _NAMED.match(spec)
        name, pattern = (match["name"], match["pattern"]) if match and not Path(spec).exists() else (None, spec)
        name = name or DEFAULT_SOURCE
        if match and match["weight"] is not None and name != DEFAULT_SOURCE:
            given[name] = float(match["weight"])
        shards.setdefault(name, []).extend(_resolve(pattern))
    if not shards:
        raise DataSpecError("--data names no shards")
    weights = {**(weights or {}), **given}
    sources = [Source(n, tuple(sorted(set(s))), float(weights.get(n, 1.0))) for n, s in shards.items()]
    for source in sources:
        if source.weight <= 0:
            raise DataSpecError(f"source {source.name!r} has weight {source.weight}; weights must be positive")
    return sources


class _SourceReader:
    """Endless shuffled epochs of one source's raw samples; ``(epoch, offset)`` is its position."""

    def __init__(self, source: Source, index: int, seed: int, buffer_size: int) -> None:
        self.source, self.index, self.seed, self.buffer_size = source, index, seed, buffer_size
        self.epoch, self.offset = 0, 0
        self._items: Iterator[ShardSample] | None = None

    def _epoch_items(self, epoch: int) -> Iterator[ShardSample]:
        rng = random.Random(mix_seed(self.seed, self.index, epoch))
        shards = list(self.source.shards)
        rng.shuffle(shards)
        buffer: list[ShardSample] = []
        for shard in shards:
            for sample in iter_samples(shard):
                if len(buffer) < self.buffer_size:
                    buffer.append(sample)
                    continue
                j = rng.randrange(len(buffer))
                yield buffer[j]
                buffer[j] = sample
        rng.shuffle(buffer)
        yield from buffer

    def seek(self, epoch: int, offset: int) -> None:
        """Continue from item ``offset`` of epoch ``epoch`` (the items before it are read, not decoded)."""
        self.epoch, self.offset = epoch, 0
        self._items = self._epoch_items(epoch)
        for _ in range(offset):
            self.next()

    def next(self) -> ShardSample:
        if self._items is None:
            self._items = self._epoch_items(self.epoch)
        for _ in range(2):
            item = next(self._items, None)
            if item is not None:
                self.offset += 1
                return item
            if self.offset == 0:
                raise DataSpecError(f"source {self.source.name!r} ({self.source.shards[0]} ...) holds no sample")
            self.epoch, self.offset = self.epoch + 1, 0
            self._items = self._epoch_items(self.epoch)
        raise AssertionError("unreachable")


@dataclass
class StreamItem:
    """One item of the mixed stream: its number, seed, source name and raw sample."""

    index: int
    seed: int
    source: str
    sample: ShardSample


@dataclass
class CropBatch:
    """A batch of crops: ``waves [B, W]`` (zero-padded), ``lengths [B]`` (real samples), per-row seeds and metadata."""

    waves: torch.Tensor
    lengths: torch.Tensor
    seeds: torch.Tensor
    metas: list[Any]
    keys: list[str]
    sources: list[str]

    def __len__(self) -> int:
        return self.waves.shape[0]


class AudioStream:
    """The mixed, seeded item sequence over ``sources`` and its batches of ``crop_seconds`` crops."""

    def __init__(
        self,
        sources: Sequence[Source],
        seed: int,
        crop_seconds: float,
        sample_rate: int = 16000,
        shuffle_buffer: int = 256,
    ) -> None:
        if not sources:
            raise DataSpecError("no data source")
        self.sources = list(sources)
        self.seed = seed
        self.sample_rate = sample_rate
        self.crop_samples = round(crop_seconds * sample_rate)
        self.readers = [_SourceReader(s, i, seed, shuffle_buffer) for i, s in enumerate(self.sources)]
        total = sum(s.weight for s in self.sources)
        self._cumulative = _cumulative([s.weight / total for s in self.sources])
        self.position = 0

    def _pick(self, index: int) -> int:
        u = mix_seed(self.seed, index, _SOURCE_SALT) / 2**63
        return next((i for i, c in enumerate(self._cumulative) if u < c), len(self._cumulative) - 1)

    def take(self, count: int) -> list[StreamItem]:
        """The next ``count`` items (raw, not decoded)."""
        items = []
        for _ in range(count):
            i = self.position
            reader = self.readers[self._pick(i)]
            items.append(StreamItem(i, mix_seed(self.seed, i), reader.source.name, reader.next()))
            self.position += 1
        return items

    def crop(self, item: StreamItem) -> tuple[torch.Tensor, int, Any]:
        """Decode ``item``, resample to mono ``sample_rate`` and cut its seeded crop: ``(crop, real length, meta)``."""
        waveform, sr, meta = load_sample(item.sample)
        waveform = resample(waveform, sr, self.sample_rate)
        wave = waveform[0] if waveform.shape[0] == 1 else waveform.mean(0)
        n, size = wave.shape[-1], self.crop_samples
        if n <= size:
            return torch.nn.functional.pad(wave, (0, size - n)), n, meta
        start = random.Random(mix_seed(item.seed, _CROP_SALT)).randrange(n - size + 1)
        return wave[start : start + size], size, meta

    def collate(self, items: Sequence[StreamItem]) -> CropBatch:
        """Decode and crop ``items`` into a :class:`CropBatch`."""
        crops = [self.crop(item) for item in items]
        return CropBatch(
            waves=torch.stack([c[0] for c in crops]),
            lengths=torch.tensor([c[1] for c in crops], dtype=torch.int64),
            seeds=torch.tensor([item.seed for item in items], dtype=torch.int64),
            metas=[c[2] for c in crops],
            keys=[item.sample.key for item in items],
            sources=[item.source for item in items],
        )

    def batches(self, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[CropBatch]:
        """Endless batches: each takes ``batch_size * world_size`` items and decodes this rank's ``batch_size``."""
        while True:
            items = self.take(batch_size * world_size)
            yield self.collate(items[rank * batch_size : (rank + 1) * batch_size])

    def state_dict(self) -> dict[str, Any]:
        """The position: items taken and each source's ``(epoch, offset)``."""
        return {"position": self.position, "sources": [[r.source.name, r.epoch, r.offset] for r in self.readers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` of a stream over the same sources and seed."""
        names = [s[0] for s in state["sources"]]
        if names != [s.name for s in self.sources]:
            raise ValueError(f"the stream's sources {[s.name for s in self.sources]} differ from the saved {names}")
        for reader, (_, epoch, offset) in zip(self.readers, state["sources"], strict=True):
            reader.seek(int(epoch), int(offset))
        self.position = int(state["position"])


def _cumulative(fractions: Sequence[float]) -> list[float]:
    """Running sums of ``fractions`` (which sum to one), the last set to exactly 1.0."""
    sums = list(itertools.accumulate(fractions))
    return sums[:-1] + [1.0]
