"""A task's labels checked from the json members of its shards alone, before any audio is decoded or encoded.

The run reads only the ``.json`` member of every sample (the audio is skipped unread), so a missing
label field or an unknown class stops it in seconds, naming task, split, shard and key, instead of
after the whole embedding stage.
"""

from __future__ import annotations

from collections.abc import Iterable

from xbench.data.shards import PathLike, ShardError, iter_samples, sample_json, sorted_shards
from xbench.taskspec.config import LabelError, TaskConfig


class ClipLabelError(LabelError, ShardError):
    """A clip whose json label the task cannot use: a label error and a data error of its shard.

    The message names task, split, shard and key.
    """

    def __init__(self, message: str, *, task: str, split: str, shard: str, key: str) -> None:
        self.task, self.split, self.shard, self.key = task, split, shard, key
        ValueError.__init__(self, f"task {task}, split {split}, shard {shard}, key {key!r}: {message}")


def check_labels(task: TaskConfig, split: str, shards: PathLike | Iterable[PathLike]) -> int:
    """Check the label of every sample of ``shards`` (one split of ``task``); returns the number of samples.

    Raises :class:`ClipLabelError` for the first label :meth:`xbench.taskspec.config.LabelSpec.check`
    refuses, and :class:`xbench.data.shards.ShardError` for a sample without json or audio member.
    """
    count = 0
    for shard in sorted_shards(shards):
        for sample in iter_samples(shard, extensions=("json",)):
            meta = sample_json(sample)
            try:
                task.labels.check(meta)
            except LabelError as exc:
                raise ClipLabelError(str(exc), task=task.name, split=split, shard=shard, key=sample.key) from None
            count += 1
    return count
