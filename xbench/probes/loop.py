"""The one training loop of every probe (``xares/trainer.py``): Adam, cosine schedule, best-on-valid weights.

At the start of each epoch the learning rate is set by :func:`cosine_lr`; the training batches of the
epoch come shuffled from one seeded ``torch.Generator``; every ``valid_every`` epochs the probe is
validated, and the weights of the first epoch with a strictly better (higher) validation value are
kept and loaded at the end. The model is initialised under a torch seed drawn from the same generator
(:func:`seeded_build`; the global RNG state is restored afterwards), so a rerun with the same seed is
identical. A model holding several heads stacked on dim 0 of every parameter (the multi-seed MLP,
:mod:`xbench.probes.multiseed`) has ``validate`` return one value per head, and each head keeps the
weights of its own strictly best epoch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import torch

M = TypeVar("M", bound=torch.nn.Module)
B = TypeVar("B")


class LoopConfig(Protocol):
    """The settings the loop reads (every probe config has them)."""

    epochs: int
    learning_rate: float
    valid_every: int
    seed: int


@dataclass
class TrainResult(Generic[M]):
    """The trained probe (best validation weights loaded) and its per-epoch history."""

    model: M
    best_epoch: int | list[int]  # per head (a list) when ``validate`` returns one value per head
    best_valid: float | list[float]
    history: list[dict[str, Any]] = field(default_factory=list)


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Learning rate of (0-based) ``epoch``: cosine from ``base_lr`` to ``0.1·base_lr`` over ``epochs``."""
    if epochs <= 1:
        return base_lr
    return base_lr * (0.1 + 0.9 * (1 + math.cos(math.pi * epoch / epochs)) / 2)


def seeded_build(gen: torch.Generator, build: Callable[[], M]) -> M:
    """``build()`` under a torch seed drawn from ``gen`` (the model's initialisation); global RNG restored.

    Only the CPU generator is seeded (models are built on the CPU, then moved): ``torch.manual_seed``
    would give the same initialisation but also queues a seed for every accelerator backend, which
    costs milliseconds per call.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        return build()


class _Best:
    """Strictly-better-on-valid bookkeeping: the whole state of one model, or per head of a head-stacked one."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.values: list[float] | None = None  # per head, once the first validation says how many
        self.epochs: list[int] = []
        self.state = copy.deepcopy(model.state_dict())
        self.per_head = False

    def offer(self, value: float | Sequence[float], epoch: int, model: torch.nn.Module) -> None:
        self.per_head = isinstance(value, Sequence)  # a list of per-head values
        values = [float(v) for v in value] if self.per_head else [float(value)]
        if self.values is None:
            self.values, self.epochs = [-math.inf] * len(values), [-1] * len(values)
        better = [v > b for v, b in zip(values, self.values, strict=True)]
        if not any(better):
            return
        for head in (i for i, b in enumerate(better) if b):
            self.values[head], self.epochs[head] = values[head], epoch
        state = model.state_dict()
        if not self.per_head:
            self.state = copy.deepcopy(state)
            return
        for name, tensor in state.items():
            improved = torch.tensor(better, device=tensor.device)
            self.state[name][improved] = tensor.detach()[improved]

    def result(self) -> tuple[int | list[int], float | list[float]]:
        values, epochs = self.values or [-math.inf], self.epochs or [-1]
        return (epochs, values) if self.per_head else (epochs[0], values[0])


def _mean_loss(losses: list[torch.Tensor], counts: list[int]) -> float:
    """The epoch's item-weighted mean loss, read from the device in one transfer."""
    if not losses:
        return 0.0
    values = torch.stack(losses).to("cpu", torch.float64).tolist()
    return sum(value * n for value, n in zip(values, counts, strict=True)) / max(sum(counts), 1)


def train_loop(
    what: str,
    train: Sized,
    valid: Sized,
    build: Callable[[], M],
    batches: Callable[[torch.Generator], Iterable[B]],
    loss: Callable[[M, B], tuple[torch.Tensor, int]],
    validate: Callable[[M], float | Sequence[float]],
    config: LoopConfig,
    progress: Callable[[str], None] | None = None,
) -> TrainResult[M]:
    """Train the model made by ``build()`` and return it with its strictly best validation weights.

    ``what`` names the probe in errors; ``batches(generator)`` yields one epoch of training batches
    (shuffled with ``generator``); ``loss(model, batch)`` returns the batch loss and its item count;
    ``validate(model)`` a higher-is-better value, or one per head of a head-stacked model (each head keeps
    its own best epoch). Every parameter of the model is trained and its whole ``state_dict`` is what is
    kept (frozen parts must live outside the module, as the ASR decoder does).
    """
    if len(train) == 0:
        raise ValueError(f"{what}: the train split is empty")
    if len(valid) == 0:
        raise ValueError(f"{what}: the validation split is empty")
    gen = torch.Generator().manual_seed(config.seed)
    model = seeded_build(gen, build)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    best = _Best(model)
    history = []
    for epoch in range(config.epochs):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(config.learning_rate, epoch, config.epochs)
        model.train()
        losses, counts = [], []
        for batch in batches(gen):
            batch_loss, n = loss(model, batch)
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            losses.append(batch_loss.detach())  # read once per epoch: no device-to-host wait per step
            counts.append(n)
        record = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train_loss": _mean_loss(losses, counts)}
        if (epoch + 1) % config.valid_every == 0:
            score = validate(model)
            record["valid"] = score
            best.offer(score, epoch, model)
        history.append(record)
        if progress:
            progress(f"epoch {epoch + 1}/{config.epochs} loss {record['train_loss']:.4f}")
    model.load_state_dict(best.state)
    best_epoch, best_valid = best.result()
    return TrainResult(model=model, best_epoch=best_epoch, best_valid=best_valid, history=history)
