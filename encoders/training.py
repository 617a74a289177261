"""The zoo's one pretraining loop, shared by the Dasheng MAE, BEATs masked-prediction and CaptionStew CLAP recipes.

A recipe supplies its model, a ``loss_on_batch(batch, generator)`` callable returning the scalar loss
of one batch, and a batch source (cycled). :func:`train_steps` runs AdamW with gradient-norm
clipping; one ``seed`` fixes the run's randomness: the torch global RNG (dropout, layer drop) is
seeded inside a fork, so the caller's RNG state is untouched, and a CPU ``torch.Generator`` seeded
alike is handed to ``loss_on_batch`` (masking, crops). Each recipe keeps its defaults in a
:class:`TrainSettings`; settings for the loop as a whole belong there too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch
from torch import nn

from xbench.encoders.weights import seeded

Batch = TypeVar("Batch")
LossOnBatch = Callable[[Batch, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class TrainSettings:
    """Optimiser and loop settings of :func:`train_steps` (defaults: torch's AdamW, clipping at norm 1)."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = 1.0  # None: no clipping
    seed: int = 0


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model`` that require gradients."""
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(params: Iterable[nn.Parameter], settings: TrainSettings) -> torch.optim.Optimizer:
    """AdamW over ``params`` with the learning rate, betas and weight decay of ``settings``."""
    return torch.optim.AdamW(params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay)


def forward_loss(model: nn.Module) -> LossOnBatch[Any]:
    """``loss_on_batch`` of a model whose ``forward(batch, generator=...)`` returns the loss first."""
    return lambda batch, generator: model(batch, generator=generator)[0]


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
    settings; clipping and seeding still follow them. The model is in training mode during the
    loop and in eval mode after it.
    """
    settings = replace(settings or TrainSettings(), **overrides)
    params = trainable_parameters(model)
    optimizer = optimizer or make_optimizer(params, settings)
    cuda = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
    losses: list[float] = []
    with seeded(settings.seed, cuda):
        generator = torch.Generator().manual_seed(settings.seed)
        model.train()
        try:
            for batch in itertools.islice(itertools.cycle(batches), steps):
                loss = loss_on_batch(batch, generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if settings.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                optimizer.step()
                losses.append(float(loss.detach()))
        finally:
            model.eval()
    return losses
