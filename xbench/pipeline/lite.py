"""``--lite N``: a seeded, class-stratified subset of at most N clips per split, for quick iteration.

:func:`lite_task` reads every split's labels from the shards' json members alone, picks at most ``N``
samples per split (per class, in proportion to the class's share, at least one per class while ``N``
allows; the clips of a class in an order drawn from the task's seed and the split's name) and writes them,
in their original order and bytes, as one shard per split under
``<cache>/lite/<task>-v<version>-<fingerprint>/n<N>-seed<seed>/``. It returns the task pointing at those
shards: its fingerprint differs from the full task's, so caches and results never mix, and the run marks
its results lite (``lite: N``), which the leaderboard refuses to merge with full runs.

Classes: ``class``, ``index`` and ``binary_map`` labels are their class, ``multilabel`` its first class;
other kinds (events, notes, text, captions) are one stratum.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Hashable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from xbench.core.paths import cache_root as default_cache_root
from xbench.core.paths import task_audio_dir
from xbench.data.decode import pick_audio_ext
from xbench.data.shards import iter_samples, sample_json
from xbench.data.writer import write_audio_shards
from xbench.embed.encode import plan_units
from xbench.taskspec.config import TaskConfig

__all__ = ["allocate", "lite_output", "lite_run", "lite_task", "stratum"]


def stratum(task: TaskConfig, meta: Any) -> Hashable:
    """The class a clip is stratified by (None: one stratum for label kinds without a class)."""
    kind = task.labels.kind
    if kind in ("class", "index", "binary_map"):
        return task.encode_label(meta)
    if kind == "multilabel":
        hot = task.encode_label(meta)
        return next((i for i, v in enumerate(hot) if v), None)
    return None


def allocate(counts: dict[Hashable, int], n: int, rng: np.random.Generator) -> dict[Hashable, int]:
    """Clips per stratum: at most ``n`` in all, in proportion to ``counts`` (largest remainders), at least one
    per stratum while ``n`` allows (strata left out when ``n`` is smaller are chosen by ``rng``)."""
    total = sum(counts.values())
    if total <= n:
        return dict(counts)
    order = sorted(counts, key=repr)
    tiebreak = dict(zip(order, rng.permutation(len(order)), strict=True))
    share = {s: n * counts[s] / total for s in order}
    quota = {s: min(counts[s], max(1, math.floor(share[s]))) for s in order}
    while sum(quota.values()) > n:  # more strata than n: drop one clip from the largest quotas
        s = max(order, key=lambda s: (quota[s], tiebreak[s]))
        quota[s] -= 1
    while sum(quota.values()) < n:
        open_ = [s for s in order if quota[s] < counts[s]]
        s = max(open_, key=lambda s: (share[s] - quota[s], tiebreak[s]))
        quota[s] += 1
    return quota


def _chosen(task: TaskConfig, split: str, shards: tuple[str, ...], n: int) -> set[tuple[str, str]]:
    """The (shard, key) pairs of the subset of one split."""
    by_stratum: dict[Hashable, list[tuple[str, str]]] = {}
    for shard in shards:
        for sample in iter_samples(shard, extensions=("json",)):
            by_stratum.setdefault(stratum(task, sample_json(sample)), []).append((shard, sample.key))
    rng = np.random.default_rng([task.seed, zlib.crc32(split.encode())])
    quota = allocate({s: len(items) for s, items in by_stratum.items()}, n, rng)
    chosen: set[tuple[str, str]] = set()
    for s in sorted(by_stratum, key=repr):
        items = by_stratum[s]
        chosen.update(items[i] for i in rng.permutation(len(items))[: quota[s]])
    return chosen


def _items(shards: tuple[str, ...], chosen: set[tuple[str, str]]) -> Any:
    for shard in shards:
        for sample in iter_samples(shard):
            if (shard, sample.key) in chosen:
                ext = pick_audio_ext(sample.members)
                yield sample.key, (sample.members[ext], ext), sample_json(sample)


def lite_task(
    task: TaskConfig, max_clips: int, data_root: str | None = None, cache_root: str | Path | None = None
) -> TaskConfig:
    """``task`` on a subset of at most ``max_clips`` clips per split (see the module docstring); the subset's
    shards are written once and reused."""
    if isinstance(max_clips, bool) or not isinstance(max_clips, int) or max_clips < 1:
        raise ValueError(f"lite needs a positive number of clips per split, got {max_clips!r}")
    folder = default_cache_root(cache_root) / "lite" / f"{task.name}-v{task.version}-{task.fingerprint()[:12]}"
    folder = folder / f"n{max_clips}-seed{task.seed}"
    # one unit per split holding all its shards (its checks and messages: missing shards, a folder matched)
    units = plan_units(task, task_audio_dir(task, data_root), folder, {}, "xares")
    patterns = {}
    for unit in units:
        pattern = unit.path.parent.name + "-lite-%d.tar"  # the split's name made file-safe; one shard
        if not (folder / (pattern % 0)).is_file():  # written atomically: concurrent runs write the same bytes
            chosen = _chosen(task, unit.split, unit.shards, max_clips)
            write_audio_shards(folder, pattern, _items(unit.shards, chosen), len(chosen))
        key = next(k for k in task.audio_tar_name_of_split if str(k) == unit.split)
        patterns[key] = pattern % 0
    return replace(task, data_dir=str(folder), audio_tar_name_of_split=patterns)


def lite_output(output_dir: str | Path, max_clips: int) -> Path:
    """Where a ``--lite N`` run writes its results: ``<output>/lite-<N>`` (never beside the full run's)."""
    return Path(output_dir) / f"lite-{max_clips}"


def lite_run(tasks: list[TaskConfig], opts: Any) -> tuple[list[TaskConfig], Any]:
    """The tasks and options of a ``--lite N`` run (``opts.lite``): the source data verified first when asked,
    every task on its subset, the results under :func:`lite_output`."""
    from xbench.pipeline.run import verify_data

    if opts.verify_data:
        verify_data(tasks, opts.data_root)  # the full data the subsets are drawn from
    lite = [lite_task(task, opts.lite, opts.data_root, opts.cache_root) for task in tasks]
    output = str(lite_output(opts.output_dir, opts.lite)) if opts.output_dir else None
    return lite, replace(opts, verify_data=False, output_dir=output)
