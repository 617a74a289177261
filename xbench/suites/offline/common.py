"""Shared pieces of the pool builders: sizes, items, shard writing and task declarations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xbench.core.atomic_io import atomic_write_json, sha256_file
from xbench.data.writer import write_audio_shards
from xbench.suites.offline.audio import SAMPLE_RATE, finish
from xbench.taskspec.config import TaskConfig

SPLITS = ("train", "valid", "test")
SHARD_MAXCOUNT = 500
AUDIO_FORMAT = "flac"  # lossless, about half the bytes of PCM16 wav; decoded by soundfile


@dataclass
class Item:
    """One clip of a pool: its split, key, 16 kHz mono audio and json metadata."""

    split: str
    key: str
    audio: np.ndarray
    meta: Any


@dataclass
class PoolResult:
    """What a pool builder produced: its folder, the shard checksums, clip counts and task declarations."""

    name: str
    folder: Path
    checksums: dict[str, str]
    counts: dict[str, int]
    suffix: str = ""  # "_pypi" for the variant built from PyPI sources alone
    tasks: list[TaskConfig] = field(default_factory=list)


def write_pool(folder: Path, items: list[Item]) -> tuple[dict[str, str], dict[str, int]]:
    """Write ``items`` as ``<split>-NNNNNN.tar`` FLAC shards in ``folder`` (old shards removed first)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.tar"):
        old.unlink()
    checksums: dict[str, str] = {}
    counts: dict[str, int] = {}
    for split in SPLITS:
        rows = [(it.key, (finish(it.audio), SAMPLE_RATE), it.meta) for it in items if it.split == split]
        if not rows:
            raise ValueError(f"pool {folder.name}: split {split!r} is empty")
        counts[split] = len(rows)
        for path in write_audio_shards(folder, f"{split}-*.tar", rows, SHARD_MAXCOUNT, audio_format=AUDIO_FORMAT):
            checksums[path.name] = f"sha256:{sha256_file(path)}"
    return checksums, counts


def write_declaration(task: TaskConfig, tasks_dir: Path) -> Path:
    """``<tasks_dir>/<name>.json``: the ``to_dict()`` dump, keys sorted, newline-terminated."""
    path = tasks_dir / f"{task.name}.json"
    atomic_write_json(path, task.to_dict())
    return path
