"""One run as several processes: the ranks of ``torchrun``.

``torchrun --nproc_per_node N -m xbench run ...`` starts N copies of the same run. Each rank takes embed
units by claiming them on the shared cache (:mod:`xbench.embed.claims`), so the ranks split the work
without talking to each other, places the encoder on its own GPU (``cuda`` becomes ``cuda:<LOCAL_RANK>``),
and once every unit is committed, rank 0 alone scores after a barrier (``gloo`` on the CPU, ``nccl`` on
CUDA). Without torchrun's environment a run is rank 0 of 1 and nothing is initialised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["BARRIER_TIMEOUT", "ProcessGroup", "Ranks", "process_group", "rank_device"]

# ranks meet only after every unit is committed (each waits for the others' claims first), so the barrier
# waits at most for one unit's embedding; generous for a very large model on a slow device
BARRIER_TIMEOUT = timedelta(hours=6)


@dataclass(frozen=True)
class Ranks:
    """This process's place in a multi-process run (``torchrun``'s ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``LOCAL_WORLD_SIZE``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Ranks:
        """The ranks torchrun gives this process; rank 0 of 1 outside torchrun."""
        env = dict(os.environ) if env is None else env

        def number(name: str, default: int) -> int:
            try:
                return int(env.get(name, default))
            except ValueError:
                raise ValueError(f"environment variable {name}={env[name]!r} is not an integer") from None

        world = number("WORLD_SIZE", 1)
        ranks = cls(number("RANK", 0), world, number("LOCAL_RANK", 0), number("LOCAL_WORLD_SIZE", world))
        if not (0 <= ranks.rank < ranks.world_size and 0 <= ranks.local_rank < ranks.local_world_size):
            raise ValueError(f"inconsistent torchrun environment: {ranks}")
        return ranks

    @property
    def leader(self) -> bool:
        """Rank 0: the process that scores."""
        return self.rank == 0


def rank_device(device: str, ranks: Ranks) -> str:
    """The device of this rank: ``cuda`` (no index) becomes ``cuda:<LOCAL_RANK>`` under torchrun; any other
    name, an explicit index included, is kept."""
    return f"cuda:{ranks.local_rank}" if device == "cuda" and ranks.world_size > 1 else device


class ProcessGroup:
    """The ranks of this run and a barrier among them (a no-op for a single process)."""

    def __init__(self, ranks: Ranks, device: str) -> None:
        self.ranks, self.device = ranks, device

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.ranks.world_size == 1:
            return
        import torch.distributed as dist

        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[int(self.device.partition(":")[2] or 0)])
        else:
            dist.barrier()


@contextmanager
def process_group(device: str, ranks: Ranks | None = None) -> Iterator[ProcessGroup]:
    """This run's :class:`ProcessGroup`. Under torchrun (``WORLD_SIZE`` > 1) it initialises
    ``torch.distributed`` unless the caller did (``nccl`` for a CUDA device, else ``gloo``), and tears down
    what it initialised on the way out; ``device`` is this rank's (see :func:`rank_device`)."""
    ranks = Ranks.from_env() if ranks is None else ranks
    if ranks.world_size == 1:
        yield ProcessGroup(ranks, device)
        return
    import torch
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=BARRIER_TIMEOUT)
    try:
        yield ProcessGroup(ranks, device)
    finally:
        if owned:
            dist.destroy_process_group()
