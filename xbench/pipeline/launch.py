"""One run as several processes: the ranks of ``torchrun``, and SLURM jobs through submitit.

``torchrun --nproc_per_node N -m xbench run ...`` starts N copies of the same run. Each rank takes embed
units by claiming them on the shared cache (:mod:`xbench.embed.claims`), so the ranks split the work
without talking to each other, places the encoder on its own GPU (``cuda`` becomes ``cuda:<LOCAL_RANK>``),
and once every unit is committed, rank 0 alone scores after a barrier (``gloo`` on the CPU, ``nccl`` on
CUDA). Without torchrun's environment a run is rank 0 of 1 and nothing is initialised.

:func:`submit` (``xbench run --launcher slurm --jobs N ...``, the optional extra ``xbench[slurm]``) submits an
array of N embed jobs (the same run with ``stage="embed"``; they split the units by claims as well) and one
score job that starts after all of them (``afterany``: if an embed job failed, the score job names the units
missing). A job that SLURM preempts or times out is requeued and resumes from the cache. ``--launcher local``
runs the same jobs as local processes (submitit's ``LocalExecutor``), waiting for the embed jobs before
starting the score job.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "BARRIER_TIMEOUT",
    "ClusterOptions",
    "ProcessGroup",
    "Ranks",
    "StageJob",
    "Submission",
    "process_group",
    "rank_device",
    "submit",
]

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


# --------------------------------------------------------------------------------------------------
# SLURM (and local) jobs through submitit
# --------------------------------------------------------------------------------------------------

LAUNCHERS = ("slurm", "local")


@dataclass(frozen=True)
class ClusterOptions:
    """How :func:`submit` places the jobs: ``launcher`` ``slurm`` or ``local``; ``jobs`` embed jobs of
    ``gpus_per_job`` GPUs (one embedding process per GPU) and ``cpus_per_job`` CPUs each, within
    ``timeout_min`` minutes (then requeued), on ``partition``; submitit's logs and pickles in ``folder``."""

    launcher: str = "slurm"
    jobs: int = 1
    folder: str = "slurm"
    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int | None = None
    timeout_min: int = 24 * 60
    mem_gb: float | None = None

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"launcher must be one of {', '.join(LAUNCHERS)}; got {self.launcher!r}")
        for name in ("jobs", "timeout_min"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive whole number, got {getattr(self, name)!r}")
        if self.gpus_per_job < 0 or (self.cpus_per_job is not None and self.cpus_per_job < 1):
            raise ValueError("gpus per job must be 0 or more and cpus per job at least 1")


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise ImportError(
            "the slurm and local launchers need submitit: pip install 'xbench[slurm]' (or pip install submitit)"
        ) from None
    return submitit


def _one_gpu_per_task() -> None:
    """In a job of several tasks (one per GPU), show each task only its own GPU, before CUDA starts."""
    tasks, local = os.environ.get("SLURM_NTASKS_PER_NODE"), os.environ.get("SLURM_LOCALID")
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    if tasks and local and tasks.isdigit() and int(tasks) > 1 and len(visible) == int(tasks):
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[int(local)]


class StageJob:
    """One job: :func:`xbench.pipeline.run.evaluate` of the run at one stage. Preempted or timed out, it is
    requeued as it is (``checkpoint``): the claims and the cache make it resume where it stopped."""

    def __init__(self, encoder: Any, tasks: Sequence[Any], options: Any) -> None:
        self.encoder, self.tasks, self.options = encoder, list(tasks), options

    def __call__(self) -> Any:
        import logging

        from xbench.pipeline.run import evaluate

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # per task
        _one_gpu_per_task()
        frame = evaluate(self.encoder, self.tasks, self.options)
        return None if self.options.stage == "embed" else frame

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's requeue hook: the same job again."""
        return _import_submitit().helpers.DelayedSubmission(self, *args, **kwargs)


@dataclass
class Submission:
    """The submitted jobs: ``embed`` (one per ``--jobs``) and the ``score`` job after them."""

    embed: list[Any]
    score: Any
    folder: Path

    def describe(self) -> str:
        ids = ", ".join(str(job.job_id) for job in self.embed)
        return f"embed jobs {ids}; score job {self.score.job_id} after them; logs in {self.folder}"

    def wait(self) -> Any:
        """The score job's results frame, once it ends (raises if a job failed)."""
        return self.score.result()


def submit(encoder: Any, tasks: Sequence[Any], options: Any, cluster: ClusterOptions) -> Submission:
    """Submit the run ``(encoder, tasks, options)`` as ``cluster.jobs`` embed jobs and one score job."""
    submitit = _import_submitit()
    folder = Path(cluster.folder)
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster.launcher)
    gpus = cluster.gpus_per_job
    executor.update_parameters(
        name="xbench-embed",
        timeout_min=cluster.timeout_min,
        gpus_per_node=gpus,
        tasks_per_node=max(1, gpus),  # one embedding process per GPU
        **({"cpus_per_task": cluster.cpus_per_job // max(1, gpus)} if cluster.cpus_per_job else {}),
        **({"mem_gb": cluster.mem_gb} if cluster.mem_gb else {}),
        **({"slurm_partition": cluster.partition} if cluster.partition and cluster.launcher == "slurm" else {}),
    )
    quiet = replace(options, show_progress=False)  # job logs, not terminals
    embed_job = StageJob(encoder, tasks, replace(quiet, stage="embed"))
    with executor.batch():  # on SLURM one job array
        embed = [executor.submit(embed_job) for _ in range(cluster.jobs)]
    score_params: dict[str, Any] = {"name": "xbench-score", "tasks_per_node": 1, "gpus_per_node": min(gpus, 1)}
    if cluster.launcher == "slurm":
        array = str(embed[0].job_id).split("_")[0]
        score_params["slurm_dependency"] = f"afterany:{array}"
    else:
        for job in embed:  # the local executor has no dependencies: wait here
            job.result()
    executor.update_parameters(**score_params)
    score = executor.submit(StageJob(encoder, tasks, replace(quiet, stage="score")))
    return Submission(embed, score, folder)
