"""The one training loop of every probe (``xares/trainer.py``): Adam, cosine schedule, best-on-valid weights.

At the start of each epoch the learning rate is set by :func:`cosine_lr`; the training batches of the
epoch come shuffled from one seeded ``torch.Generator``; every ``valid_every`` epochs the probe is
validated, and the weights of the first epoch with a strictly better (higher) validation value are
kept and loaded at the end. The model is initialised under a torch seed drawn from the same generator
(the global RNG state is restored afterwards), so a rerun with the same seed is identical.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

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
    best_epoch: int
    best_valid: float
    history: list[dict[str, float]] = field(default_factory=list)


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Learning rate of (0-based) ``epoch``: cosine from ``base_lr`` to ``0.1·base_lr`` over ``epochs``."""
    if epochs <= 1:
        return base_lr
    return base_lr * (0.1 + 0.9 * (1 + math.cos(math.pi * epoch / epochs)) / 2)


def train_loop(
    what: str,
    train: Sized,
    valid: Sized,
    build: Callable[[], M],
    batches: Callable[[torch.Generator], Iterable[B]],
    loss: Callable[[M, B], tuple[torch.Tensor, int]],
    validate: Callable[[M], float],
    config: LoopConfig,
    progress: Callable[[str], None] | None = None,
) -> TrainResult[M]:
    """Train the model made by ``build()`` and return it with its strictly best validation weights.

    ``what`` names the probe in errors; ``batches(generator)`` yields one epoch of training batches
    (shuffled with ``generator``); ``loss(model, batch)`` returns the batch loss and its item count;
    ``validate(model)`` a higher-is-better value. Every parameter of the model is trained and its whole
    ``state_dict`` is what is kept (frozen parts must live outside the module, as the ASR decoder does).
    """
    if len(train) == 0:
        raise ValueError(f"{what}: the train split is empty")
    if len(valid) == 0:
        raise ValueError(f"{what}: the validation split is empty")
    gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        model = build()
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    best_value, best_epoch, best_state = -math.inf, -1, copy.deepcopy(model.state_dict())
    history = []
    for epoch in range(config.epochs):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(config.learning_rate, epoch, config.epochs)
        model.train()
        total, count = 0.0, 0
        for batch in batches(gen):
            batch_loss, n = loss(model, batch)
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            total += float(batch_loss.detach()) * n
            count += n
        record = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train_loss": total / max(count, 1)}
        if (epoch + 1) % config.valid_every == 0:
            score = validate(model)
            record["valid"] = score
            if score > best_value:
                best_value, best_epoch, best_state = score, epoch, copy.deepcopy(model.state_dict())
        history.append(record)
        if progress:
            progress(f"epoch {epoch + 1}/{config.epochs} loss {record['train_loss']:.4f}")
    model.load_state_dict(best_state)
    return TrainResult(model=model, best_epoch=best_epoch, best_valid=best_value, history=history)
