"""The default protocol's MLP track over several probe seeds, trained together at about the cost of one probe.

One head per probe seed, every parameter stacked on dim 0 of one :class:`StackedLinearProbe`
(LayerNorm affine ``[H, D]``, Linear ``[H, C, D]`` + ``[H, C]``), trained by the one loop
(:func:`xbench.probes.loop.train_loop`) on the sum of the heads' losses: every head gets exactly its
own gradient, and Adam updates every element on its own, so each head follows the trajectory it would
follow alone. Head ``h`` is initialised as :func:`xbench.probes.linear.train_probe` with ``seed=seeds[h]``
initialises its probe (a generator seeded with the seed draws the initialisation seed), and keeps the
weights of its own strictly best validation epoch.

All heads train on the same batches: each epoch's order is the one the first seed (the task's seed)
draws, as its single probe does. So the first head is exactly the single probe of ``--probe-seeds 1``
(up to floating-point rounding of the stacked product), and the heads differ in their initialisation
only; the seed spread therefore measures initialisation, not ordering (probes trained alone with
their own seeds differ in both: ``benchmarks/bench_seed_coverage.py`` compares the two). Shared batches
keep the cost near one probe: a step is one product of the batch with all heads' weights
(``benchmarks/bench_run_overhead.py`` measures the scoring stage against one probe).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from xbench.probes.linear import LinearProbe, ProbeConfig, ProbeData, _loss_fn, predict
from xbench.probes.loop import TrainResult, seeded_build, train_loop

DEFAULT_PROBE_SEEDS = 5
"""The default protocol's number of probe seeds (``xbench run --probe-seeds``)."""


def probe_seeds(base: int, count: int) -> list[int]:
    """The probe seeds of a task: ``base, base + 1, …`` (``base`` is the task's seed)."""
    if count < 1:
        raise ValueError(f"probe_seeds must be at least 1, got {count}")
    return [base + i for i in range(count)]


class StackedLinearProbe(torch.nn.Module):
    """``H`` independent ``LayerNorm(D) → Linear(D, C)`` heads with every parameter stacked on dim 0.

    ``forward(x)`` applies every head to the same input ``[B, D]`` or ``[B, T, D]``: output ``[H, B, (T,) C]``.
    """

    def __init__(self, heads: Sequence[LinearProbe]) -> None:
        super().__init__()
        if not heads:
            raise ValueError("StackedLinearProbe needs at least one head")

        def stack(get: Callable[[LinearProbe], torch.Tensor]) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.stack([get(h).detach().clone() for h in heads]))

        self.norm_weight = stack(lambda h: h.norm.weight)  # [H, D]
        self.norm_bias = stack(lambda h: h.norm.bias)  # [H, D]
        self.weight = stack(lambda h: h.linear.weight)  # [H, C, D]
        self.bias = stack(lambda h: h.linear.bias)  # [H, C]
        self.eps = heads[0].norm.eps

    @property
    def heads(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.normalise(x))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """The LayerNorm without its (per-head) affine: the same for every head, no parameters."""
        return F.layer_norm(x, x.shape[-1:], eps=self.eps)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Every head's LayerNorm affine and Linear on normalised input ``z`` ``[..., D]``: ``[H, ..., C]``."""
        heads, outputs, dim = self.weight.shape
        # the affine folded into the Linear, (z·γ + β)Wᵀ + b = z(W ⊙ γ)ᵀ + (W·β + b): the same function up to
        # rounding, and all heads in one product with an [H·C, D] weight
        weight = self.weight * self.norm_weight[:, None, :]  # [H, C, D]
        bias = self.bias + (self.weight * self.norm_bias[:, None, :]).sum(-1)  # [H, C]
        out = F.linear(z, weight.reshape(heads * outputs, dim), bias.reshape(heads * outputs))  # [..., H·C]
        return out.unflatten(-1, (heads, outputs)).movedim(-2, 0)

    def head(self, index: int) -> LinearProbe:
        """Head ``index`` as a plain :class:`LinearProbe` (a copy)."""
        dim, outputs = self.weight.shape[2], self.weight.shape[1]
        probe = LinearProbe(dim, outputs).to(self.weight.device)
        probe.norm.eps = self.eps
        with torch.no_grad():
            probe.norm.weight.copy_(self.norm_weight[index])
            probe.norm.bias.copy_(self.norm_bias[index])
            probe.linear.weight.copy_(self.weight[index])
            probe.linear.bias.copy_(self.bias[index])
        return probe


def train_probes(
    train: ProbeData,
    valid: ProbeData,
    num_outputs: int,
    config: ProbeConfig,
    seeds: Sequence[int],
    validate: Callable[[list | np.ndarray, ProbeData], float],
    progress: Callable[[str], None] | None = None,
) -> TrainResult[StackedLinearProbe]:
    """Train one :class:`LinearProbe` head per seed together; ``validate(logits, valid)`` as for ``train_probe``.

    ``config.seed`` is ignored (``seeds`` replace it; ``seeds[0]`` orders the batches). The result's
    ``best_epoch`` / ``best_valid`` are per-head lists.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"probe seeds must be distinct and at least one, got {seeds}")
    loss_fn = _loss_fn(config)
    device = config.device
    first = train.inputs[0] if train.frame_level else train.inputs
    dim = first.shape[-1]
    prepared: list[ProbeData] = []  # the training data as the steps see it (below)

    def build() -> StackedLinearProbe:
        # the first head under the loop's draw from seeds[0]'s generator, each other under its own seed's draw
        heads = [LinearProbe(dim, num_outputs)]
        for seed in seeds[1:]:
            heads.append(seeded_build(torch.Generator().manual_seed(seed), lambda: LinearProbe(dim, num_outputs)))
        model = StackedLinearProbe(heads).to(device)
        # clip inputs normalised once (the LayerNorm without affine acts row by row), not in every step
        prepared.append(train if train.frame_level else ProbeData(model.normalise(train.inputs), train.targets))
        return model

    def batch_loss(model: StackedLinearProbe, batch: tuple) -> tuple[torch.Tensor, int]:
        x, y, mask = batch
        x = x.to(device)
        logits = model(x) if train.frame_level else model.project(x)  # clips were normalised in build()
        heads = model.heads

        def every_head(t: torch.Tensor) -> torch.Tensor:  # the batch's targets (or mask) once per head
            return t.to(device).expand(heads, *t.shape).flatten(0, 1)

        # every head sees the same items: the sum of the heads' mean losses is the mean over all times H
        total = loss_fn(logits.flatten(0, 1), every_head(y), None if mask is None else every_head(mask)) * heads
        return total, len(x) * heads  # the history's train_loss: the mean over heads

    def validate_heads(model: StackedLinearProbe) -> list[float]:
        bs = config.batch_size_valid or config.batch_size
        return [validate(logits, valid) for logits in predict(model, valid, bs, device, heads=model.heads)]

    return train_loop(
        "probe",
        train,
        valid,
        build,
        lambda gen: prepared[0].batches(config.batch_size, gen),
        batch_loss,
        validate_heads,
        replace(config, seed=seeds[0]),
        progress,
    )


__all__ = [
    "DEFAULT_PROBE_SEEDS",
    "StackedLinearProbe",
    "probe_seeds",
    "train_probes",
]
