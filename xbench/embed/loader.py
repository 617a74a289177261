"""Reading a unit's clips in ``torch.utils.data.DataLoader`` workers, so decoding and resampling overlap the
encoder's forward pass.

Worker ``w`` of ``n`` decodes the samples at positions ``w, w + n, w + 2n, ...`` of the unit's sorted shards
and hands each sample's clips (its crops, or the one clip) over as one item. A ``DataLoader`` takes items from
its workers in turn (round robin, in order), so the clips come out in exactly :func:`xbench.data.shards.iter_clips`'s
order, and the results of a run do not depend on the number of workers. An error in a worker (a bad shard,
a NaN sample) reaches the caller as the same exception, with its message.

Workers are forked (where the platform can, as on Linux) whatever the process's default start method: a
spawned worker imports torch and xbench afresh for every unit, seconds each. Where fork is missing (macOS
and Windows keep spawn) decoding stays in the embedding process unless ``--workers`` asks otherwise.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.utils.data

from xbench.data.shards import Clip, iter_clips

__all__ = ["default_workers", "read_clips"]

FORK = "fork" in multiprocessing.get_all_start_methods()


def default_workers(processes_per_host: int = 1) -> int:
    """Decoding workers per embedding process when ``--workers`` is not given: the CPUs this process may
    use, shared among the processes of this host, less one for the encoder; at most 8; 0 without fork."""
    if not FORK:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(8, cpus // max(1, processes_per_host) - 1))


class _Failure:
    """An exception raised in a worker, carried to the caller whole (``DataLoader`` would rebuild it from its
    message alone, which fails for exceptions that need more arguments, such as ``ShardError``)."""

    def __init__(self, exc: BaseException) -> None:
        self.kind, self.args, self.state = type(exc), exc.args, dict(vars(exc))

    def rebuild(self) -> BaseException:
        exc = self.kind.__new__(self.kind)
        exc.args = self.args
        vars(exc).update(self.state)
        return exc


class _Samples(torch.utils.data.IterableDataset):
    """The clips of every ``n``-th sample of ``shards``, one list per sample, in this worker's share."""

    def __init__(self, shards: Sequence[str], target_sr: int, crop_length: float | None) -> None:
        super().__init__()
        self.shards, self.target_sr, self.crop_length = list(shards), target_sr, crop_length

    def __iter__(self) -> Iterator[list[Clip] | _Failure]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        clips = iter_clips(self.shards, self.target_sr, self.crop_length, select=lambda i: i % workers == worker)
        try:
            for _, sample in itertools.groupby(clips, key=lambda clip: (clip.shard, clip.source_key)):
                yield list(sample)
        except Exception as exc:  # handed to the caller in order, after the clips decoded before it
            yield _Failure(exc)


def _as_is(item: Any) -> Any:
    return item


def read_clips(
    shards: Sequence[str], target_sr: int, crop_length: float | None, workers: int, prefetch: int = 2
) -> Iterator[Clip]:
    """The clips of ``shards`` in :func:`~xbench.data.shards.iter_clips` order, decoded by ``workers``
    ``DataLoader`` processes (``0``: in this process), each keeping up to ``prefetch`` samples ready."""
    if workers <= 0:
        yield from iter_clips(shards, target_sr, crop_length)
        return
    loader = torch.utils.data.DataLoader(
        _Samples(shards, target_sr, crop_length),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=max(1, prefetch),
        collate_fn=_as_is,
        multiprocessing_context="fork" if FORK else None,
    )
    for item in loader:
        if isinstance(item, _Failure):
            raise item.rebuild()
        yield from item
