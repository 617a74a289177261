"""The zoo's one pretraining loop, shared by the Dasheng MAE, BEATs (encoder and tokenizer) and CaptionStew recipes.

A recipe supplies its model, a loss callable and a batch source. :class:`Trainer` runs AdamW with a
warm-up + cosine (or linear, or constant) learning-rate schedule, gradient accumulation, gradient-norm
clipping, bf16 autocast where asked, and DistributedDataParallel gradient averaging when the module it
calls is wrapped in DDP. Its whole state (model, optimiser, scheduler, the loop's generator, the
global RNG that dropout draws from, the step) is one ``state_dict``, so a run stopped after any step
and restored continues bitwise as if it had never stopped (on CPU).

Randomness: the torch global RNG (dropout, layer drop) is seeded with ``seed + rank`` inside a fork,
so the caller's RNG state is untouched; a CPU ``torch.Generator`` seeded with ``seed`` is handed to
the loss (masking, crops). Batches may carry their own per-row randomness instead
(:class:`RowRandom`: one generator per clip, seeded from the clip's position in the data stream), which
makes a clip's mask independent of how the global batch is split over processes and accumulation steps.

:func:`train_steps` is the short form the recipes' tests use: ``steps`` steps over a cycled list of
batches, returning the losses.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import torch
from torch import nn

Batch = TypeVar("Batch")
LossOnBatch = Callable[[Batch, torch.Generator], torch.Tensor]
LossOutput = torch.Tensor | tuple[torch.Tensor, dict[str, float]]
ModuleLoss = Callable[[nn.Module, Any, torch.Generator], LossOutput]

SCHEDULES = ("constant", "cosine", "linear")
PRECISIONS = ("fp32", "bf16", "auto")


@dataclass(frozen=True)
class TrainSettings:
    """Optimiser and loop settings (defaults: torch's AdamW, clipping at norm 1, constant learning rate).

    ``schedule``: after ``warmup_steps`` of linear warm-up from ``lr / warmup_steps``, ``"cosine"``
    and ``"linear"`` decay to ``min_lr_ratio * lr`` at the last step. ``accumulation``: micro-batches
    per optimiser step (the loss of each is divided by it). ``precision``: ``"bf16"`` runs the forward
    pass under bf16 autocast, ``"auto"`` does so on a CUDA device that supports it.
    """

    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    max_grad_norm: float | None = 1.0  # None: no clipping
    seed: int = 0
    warmup_steps: int = 0
    schedule: str = "constant"
    min_lr_ratio: float = 0.0
    accumulation: int = 1
    precision: str = "fp32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.accumulation < 1 or self.warmup_steps < 0:
            raise ValueError("accumulation must be >= 1 and warmup_steps >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model`` that require gradients."""
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(params: Iterable[nn.Parameter], settings: TrainSettings) -> torch.optim.Optimizer:
    """AdamW over ``params`` with the learning rate, betas, eps and weight decay of ``settings``."""
    return torch.optim.AdamW(
        params, lr=settings.lr, betas=settings.betas, eps=settings.eps, weight_decay=settings.weight_decay
    )


def lr_factor(step: int, total_steps: int, settings: TrainSettings) -> float:
    """The learning-rate multiplier of optimiser step ``step`` (0-based) of ``total_steps``."""
    warmup = settings.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    if settings.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup - 1))
    floor = settings.min_lr_ratio
    if settings.schedule == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return floor + (1 - floor) * (1 - progress)


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, settings: TrainSettings
) -> torch.optim.lr_scheduler.LambdaLR:
    """The :func:`lr_factor` schedule over ``total_steps`` as a ``LambdaLR`` (stepped once per optimiser step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, settings))


def forward_loss(model: nn.Module) -> LossOnBatch[Any]:
    """``loss_on_batch`` of a model whose ``forward(batch, generator=...)`` returns the loss first."""
    return lambda batch, generator: model(batch, generator=generator)[0]


# --------------------------------------------------------------------------------------------------
# Per-clip randomness
# --------------------------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """A 63-bit seed mixed from integers (splitmix64 steps): unrelated inputs give unrelated seeds."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & _MASK64)) & _MASK64
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        state = z ^ (z >> 31)
    return state >> 1


class RowRandom:
    """One CPU generator per batch row, seeded from that row's seed and a ``purpose`` salt.

    A row's draws depend only on its own seed, never on its batch-mates, so a clip gets the same mask
    in a batch of 64 on one process as in a batch of 32 on each of two.
    """

    def __init__(self, seeds: Sequence[int] | torch.Tensor, purpose: int = 0) -> None:
        self.seeds = [int(s) for s in seeds]
        self.purpose = purpose
        self.generators = [torch.Generator().manual_seed(mix_seed(s, purpose)) for s in self.seeds]

    def __len__(self) -> int:
        return len(self.seeds)

    def child(self, purpose: int) -> RowRandom:
        """Independent per-row generators for another use (e.g. crops versus masks)."""
        return RowRandom(self.seeds, mix_seed(self.purpose, purpose))

    def rand(self, *shape: int) -> torch.Tensor:
        """``[rows, *shape]`` uniform draws, row ``i`` from generator ``i``."""
        return torch.stack([torch.rand(shape, generator=g) for g in self.generators])


RandomSource = torch.Generator | RowRandom | None


def uniform(shape: Sequence[int], generator: RandomSource) -> torch.Tensor:
    """``torch.rand(shape)`` from one generator, or row by row from a :class:`RowRandom` (``shape[0]`` rows)."""
    if isinstance(generator, RowRandom):
        if len(generator) != shape[0]:
            raise ValueError(f"RowRandom has {len(generator)} rows, the batch {shape[0]}")
        return generator.rand(*shape[1:])
    return torch.rand(tuple(shape), generator=generator)


# --------------------------------------------------------------------------------------------------
# Distributed helpers (no-ops in a single process)
# --------------------------------------------------------------------------------------------------


def world() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised process group, ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``values`` over all processes (itself in a single process)."""
    import torch.distributed as dist

    _, size = world()
    if size == 1:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / size


def autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for ``"bf16"`` (and ``"auto"`` on a bf16-capable CUDA device); else nothing."""
    use = precision == "bf16" or (
        precision == "auto" and device_type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    )
    return torch.autocast(device_type, dtype=torch.bfloat16) if use else contextlib.nullcontext()


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


@dataclass
class StepRecord:
    """What one optimiser step did: its number (1-based), mean loss, learning rate, recipe metrics, seconds."""

    step: int
    loss: float
    lr: float
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


def _split(output: LossOutput) -> tuple[torch.Tensor, dict[str, float]]:
    return output if isinstance(output, tuple) else (output, {})


class Trainer:
    """AdamW steps over ``loss_fn(module, batch, generator)`` with a resumable state (see the module docstring).

    ``model`` owns the parameters and the state; ``module`` (default ``model``) is what the loss calls,
    e.g. ``DistributedDataParallel(model)``. ``total_steps`` sizes the schedule (default: the first
    :meth:`run`'s ``steps``). ``optimizer`` replaces the AdamW built from ``settings``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: ModuleLoss,
        settings: TrainSettings,
        total_steps: int | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        module: nn.Module | None = None,
    ) -> None:
        self.model = model
        self.module = module if module is not None else model
        self.loss_fn = loss_fn
        self.settings = settings
        self.params = trainable_parameters(model)
        self.optimizer = optimizer or make_optimizer(self.params, settings)
        self.total_steps = total_steps
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.step = 0
        rank, _ = world()
        self._devices = sorted({p.device.index or 0 for p in self.params if p.device.type == "cuda"})
        self._device_type = "cuda" if self._devices else "cpu"
        self._rng = self._seeded_rng(settings.seed + rank)
        self._live = False

    def _seeded_rng(self, seed: int) -> dict[str, Any]:
        with torch.random.fork_rng(devices=self._devices):
            torch.manual_seed(seed)
            return self._capture_rng()

    def _capture_rng(self) -> dict[str, Any]:
        return {"cpu": torch.get_rng_state(), "cuda": [torch.cuda.get_rng_state(d) for d in self._devices]}

    def _restore_rng(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["cpu"])
        for device, cuda_state in zip(self._devices, state.get("cuda", []), strict=False):
            torch.cuda.set_rng_state(cuda_state, device)

    def _ensure_scheduler(self, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
        if self.scheduler is None:
            self.total_steps = self.total_steps or self.step + steps
            self.scheduler = make_scheduler(self.optimizer, self.total_steps, self.settings)
        return self.scheduler

    def _micro_step(self, batch: Any, sync: bool) -> tuple[torch.Tensor, dict[str, float]]:
        no_sync = getattr(self.module, "no_sync", None)
        context = contextlib.nullcontext() if sync or no_sync is None else no_sync()
        with context:
            with autocast(self._device_type, self.settings.precision):
                loss, metrics = _split(self.loss_fn(self.module, batch, self.generator))
            (loss / self.settings.accumulation).backward()
        return loss.detach().float(), metrics

    def run(
        self, batches: Iterator[Any], steps: int, on_step: Callable[[StepRecord], None] | None = None
    ) -> list[float]:
        """Run ``steps`` optimiser steps (``accumulation`` batches each); returns each step's loss.

        ``on_step`` is called after every step (e.g. to log or checkpoint through :meth:`state_dict`).
        The model is in training mode during the loop and in eval mode after it.
        """
        scheduler = self._ensure_scheduler(steps)
        accumulation = self.settings.accumulation
        losses: list[float] = []
        with torch.random.fork_rng(devices=self._devices):
            self._restore_rng(self._rng)
            self._live = True
            self.model.train()
            try:
                for _ in range(steps):
                    start = time.perf_counter()
                    lr = self.optimizer.param_groups[0]["lr"]
                    self.optimizer.zero_grad(set_to_none=True)
                    parts = [self._micro_step(next(batches), i == accumulation - 1) for i in range(accumulation)]
                    if self.settings.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(self.params, self.settings.max_grad_norm)
                    self.optimizer.step()
                    scheduler.step()
                    self.step += 1
                    names = sorted(parts[0][1])
                    values = torch.stack(
                        [torch.tensor([float(loss)] + [m[n] for n in names], dtype=torch.float64) for loss, m in parts]
                    ).mean(0)
                    values = mean_over_ranks(values)
                    losses.append(float(values[0]))
                    if on_step is not None:
                        metrics = {n: float(v) for n, v in zip(names, values[1:].tolist(), strict=True)}
                        on_step(StepRecord(self.step, losses[-1], lr, time.perf_counter() - start, metrics))
            finally:
                self._rng = self._capture_rng()
                self._live = False
                self.model.eval()
        return losses

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: model, optimiser, scheduler, generator, this process's RNG, step."""
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "rng": self._capture_rng() if self._live else self._rng,
        }

    def load_state_dict(self, state: dict[str, Any], rng: bool = True) -> None:
        """Restore :meth:`state_dict` (strict model keys); ``rng=False`` keeps this process's seeded RNG."""
        self.model.load_state_dict(state["model"])
        self.step = int(state["step"])
        self.total_steps = state["total_steps"]
        if state["scheduler"] is not None:  # built first: a new LambdaLR resets the optimiser's learning rate
            self.scheduler = make_scheduler(self.optimizer, int(self.total_steps), self.settings)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        if rng:
            self._rng = state["rng"]


def train_steps(
    model: nn.Module,
    loss_on_batch: LossOnBatch[Batch],
    batches: Iterable[Batch],
    steps: int,
    settings: TrainSettings | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    **overrides: Any,
) -> list[float]:
    """Run ``steps`` optimiser steps over ``batches`` (cycled); returns each step's loss.

    ``overrides`` (``lr=...``, any :class:`TrainSettings` field) replace fields of ``settings``.
    ``optimizer`` (e.g. one carried over from an earlier call) replaces the AdamW built from the
    settings; clipping, scheduling and seeding still follow them.
    """
    settings = replace(settings or TrainSettings(), **overrides)
    trainer = Trainer(model, lambda _module, batch, gen: loss_on_batch(batch, gen), settings, steps, optimizer)
    return trainer.run(itertools.cycle(batches), steps)


def module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (or buffer); the CPU for an empty module."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return torch.device("cpu")
