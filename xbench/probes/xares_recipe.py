"""The MLP probe's initialisation and training order as X-ARES 0.1.3 has them (``--protocol xares``).

X-ARES seeds the global torch RNG with the task seed when it builds a task (``TaskConfig.__post_init__``
and ``XaresTask.__init__`` in ``xares/task.py``) and then builds each fold's probe (``Mlp`` in
``xares/models/simple.py``) from that global RNG. Its scoring stage (``python -m xares.run`` stage 2)
builds the task and trains at once, so the first fold's probe is initialised right after
``torch.manual_seed(seed)``. Between two folds the global RNG moves by the later fold's probe
initialisation and by one draw per ``DataLoader`` iterator (``torch.utils.data``'s base seed): one per
training epoch, one per validation and one for the test pass (checked against the package). So the
initialisation of every fold is fixed; :meth:`XaresRecipe.build` reproduces it exactly.

Only the order of training items varies between X-ARES runs. ``create_embedding_webdataset``
(``xares/audiowebdataset.py``) reads the encoded shards (``save_encoded_per_batches`` items each, in
shard-list order) through webdataset's ``detshuffle`` of the shard list (buffer 2000, initial 500,
seeded with the epoch number), a sample shuffle buffer (2000, initial 500) and a loader shuffle buffer
(512, initial 100), both seeded from the process id and the clock, then batches of
``batch_size_train``. :meth:`XaresRecipe.batches` applies the same three buffers, the shard-list one
with X-ARES's seeds and the two sample ones from a generator seeded with the task seed and fold, so
an xbench run is one reproducible draw from the distribution of X-ARES's orders.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")
M = TypeVar("M", bound=torch.nn.Module)

SHARD_BUFFER = (2000, 500)  # detshuffle(bufsize=tar_shuffle=2000, initial=tar_shuffle // 4), seed 0 + epoch
SAMPLE_BUFFER = (2000, 500)  # wds.shuffle(bufsize=2000, initial=500) after reading the shards
LOADER_BUFFER = (512, 100)  # WebLoader(...).shuffle(512): webdataset's default initial of 100
_END: Any = object()


def buffer_shuffle(items: Iterable[T], bufsize: int, initial: int, rng: random.Random) -> Iterator[T]:
    """webdataset's shuffle buffer (``shuffle`` in ``webdataset/filters.py``), driven by ``rng``.

    While the buffer holds fewer than ``bufsize`` items each step reads two; once it holds ``initial``
    (at most ``bufsize``) each step yields one item picked uniformly from it (the last item takes the
    picked one's place); the rest is drained the same way at the end.
    """
    initial = min(initial, bufsize)
    source = iter(items)
    buf: list[T] = []

    def pick() -> T:
        k = rng.randint(0, len(buf) - 1)
        item, buf[k] = buf[k], buf[-1]
        buf.pop()
        return item

    for item in source:
        buf.append(item)
        if len(buf) < bufsize:
            extra = next(source, _END)
            if extra is not _END:
                buf.append(extra)
        if len(buf) >= initial:
            yield pick()
    while buf:
        yield pick()


def loader_iterations(epochs: int, valid_every: int) -> int:
    """``DataLoader`` iterators X-ARES creates for one fold: one per epoch, per validation, and the test."""
    return epochs + epochs // valid_every + 1


def encoded_shard_sizes(split_sizes: Sequence[int], per_shard: int) -> tuple[int, ...]:
    """Items per encoded shard of the training splits, in order (X-ARES writes ``per_shard`` per shard)."""
    sizes: list[int] = []
    for size in split_sizes:
        full, rest = divmod(size, per_shard)
        sizes += [per_shard] * full + ([rest] if rest else [])
    return tuple(sizes)


@dataclass(frozen=True)
class XaresRecipe:
    """How X-ARES initialises and orders the probe of one evaluation round.

    fold: the 0-based evaluation round (X-ARES trains the folds in order in one process);
    shard_sizes: training items per encoded shard, in shard-list order (:func:`encoded_shard_sizes`).
    """

    seed: int
    fold: int
    shard_sizes: tuple[int, ...]
    epochs: int
    valid_every: int

    def build(self, make: Callable[[], M]) -> M:
        """``make()`` from the CPU RNG state X-ARES has when it builds this fold's probe; state restored after.

        ``make`` builds the probe as X-ARES does (``LayerNorm`` then ``Linear``, on the CPU's default
        generator); the earlier folds' probes are built and dropped to replay their draws.
        """
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(self.seed)
            for _ in range(self.fold):
                make()
                for _ in range(loader_iterations(self.epochs, self.valid_every)):
                    torch.empty((), dtype=torch.int64).random_()
            return make()

    def orders(self) -> Iterator[list[int]]:
        """Training item indices of each successive epoch, in X-ARES's reading order."""
        starts = [sum(self.shard_sizes[:i]) for i in range(len(self.shard_sizes))]
        shards = [range(s, s + n) for s, n in zip(starts, self.shard_sizes, strict=True)]
        rng = random.Random(f"xbench xares-protocol order {self.seed} {self.fold}")
        epoch = 0
        while True:
            shard_order = buffer_shuffle(range(len(shards)), *SHARD_BUFFER, random.Random(epoch))
            stream = (i for s in shard_order for i in shards[s])
            stream = buffer_shuffle(buffer_shuffle(stream, *SAMPLE_BUFFER, rng), *LOADER_BUFFER, rng)
            yield list(stream)
            epoch += 1

    def batches(self, epoch_batches: Callable[[list[int]], Iterable[T]]) -> Callable[[Any], Iterable[T]]:
        """A training loop's ``batches(generator)``: each call is the next epoch, ``epoch_batches(order)``.

        The loop's generator is not used: the order comes from :meth:`orders`.
        """
        orders = self.orders()
        return lambda _generator: epoch_batches(next(orders))
