"""The default protocol's MLP track over several probe seeds, trained together at about the cost of one probe.

Probe seed ``s`` means what :func:`xbench.probes.linear.train_probe` with ``seed=s`` means: a generator
seeded with ``s`` draws the head's initialisation seed and then every epoch's shuffle. The heads of all
seeds are stacked on dim 0 of one :class:`StackedLinearProbe` (LayerNorm affine ``[H, D]``, Linear
``[H, C, D]`` + ``[H, C]``) and trained by the one loop (:func:`xbench.probes.loop.train_loop`) on the
sum of their losses: every head gets exactly its own gradient, and Adam updates every element on its
own, so head ``h`` follows the same trajectory as a probe trained alone with seed ``seeds[h]``.
Each step stacks one batch per seed, each from that seed's own shuffle (not one shared order: a clip
step gathers every seed's batch at once; frame batches are padded to the step's longest clip and
masked). Every head keeps the weights of its own strictly best validation epoch. Up to floating-point
rounding of the batched products, head ``h`` equals ``train_probe(..., seed=seeds[h])``; ``seeds[0]``
is the task's seed, so the first head is the single probe of ``--probe-seeds 1``.

The cost: one step runs every head's product in one batched call, so ``H`` heads cost far less than
``H`` probes; ``benchmarks/bench_run_overhead.py`` measures the scoring stage with 5 seeds against one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

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


class _HeadsLinear(torch.autograd.Function):
    """``z[h] @ weight[h]ᵀ + bias[h]`` for every head ``h`` (``[H, M, D]``, ``[H, C, D]``, ``[H, C]``).

    The same as ``torch.baddbmm``, with a backward pass whose weight gradient multiplies ``gradᵀ [H, C, M]``
    by ``z [H, M, D]`` as stored: autograd's own ``baddbmm`` backward multiplies a transposed ``z``, which
    the CPU batched product runs several times slower on these shapes.
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z, weight)
        return torch.baddbmm(bias[:, None, :], z, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        z, weight = ctx.saved_tensors
        grad_z = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        return grad_z, torch.bmm(grad.transpose(1, 2), z), grad.sum(1)


class StackedLinearProbe(torch.nn.Module):
    """``H`` independent ``LayerNorm(D) → Linear(D, C)`` heads with every parameter stacked on dim 0.

    ``forward(x)`` applies every head to shared input ``[B, D]`` / ``[B, T, D]``; with ``per_head=True``
    the input carries one batch per head, ``[H, B, D]`` / ``[H, B, T, D]``. Output ``[H, B, (T,) C]``.
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

    def forward(self, x: torch.Tensor, per_head: bool = False) -> torch.Tensor:
        return self.project(self.normalise(x), per_head)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """The LayerNorm without its (per-head) affine: the same for every head, no parameters."""
        return F.layer_norm(x, x.shape[-1:], eps=self.eps)

    def project(self, z: torch.Tensor, per_head: bool = False) -> torch.Tensor:
        """Every head's LayerNorm affine and Linear on normalised input ``z`` (shared, or one batch per head)."""
        lead = z.shape[1:-1] if per_head else z.shape[:-1]
        flat = z.reshape(self.heads if per_head else 1, -1, z.shape[-1])  # [H or 1, M, D]
        # the affine folded into the Linear, (z·γ + β)Wᵀ + b = z(W ⊙ γ)ᵀ + (W·β + b): the same function up to
        # rounding, with no [H, M, D] intermediate
        weight = self.weight * self.norm_weight[:, None, :]  # [H, C, D]
        bias = self.bias + (self.weight * self.norm_bias[:, None, :]).sum(-1)  # [H, C]
        if per_head:
            out = _HeadsLinear.apply(flat, weight, bias)
        else:
            out = torch.matmul(flat, weight.transpose(1, 2)) + bias[:, None, :]
        return out.reshape(self.heads, *lead, out.shape[-1])

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


def stacked_batches(
    data: ProbeData, batch_size: int, generators: Sequence[torch.Generator]
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """One epoch: per step, each generator's own shuffled batch (:meth:`ProbeData.batches`) stacked on dim 0.

    Frame batches are padded to the step's longest clip (the mask marks real frames). Clip batches are
    gathered in one step from the generators' permutations (the ones :meth:`ProbeData.batches` draws).
    """
    if not data.frame_level:
        orders = torch.stack([torch.randperm(len(data), generator=g) for g in generators])  # [H, N]
        for start in range(0, len(data), batch_size):
            idx = orders[:, start : start + batch_size]
            flat = idx.reshape(-1)
            x, y = data.inputs.index_select(0, flat), data.targets.index_select(0, flat)
            yield x.view(*idx.shape, *x.shape[1:]), y.view(*idx.shape, *y.shape[1:]), None
        return
    for parts in zip(*(data.batches(batch_size, g) for g in generators), strict=True):
        xs, ys, masks = zip(*parts, strict=True)
        longest = max(x.shape[1] for x in xs)
        yield _padded(xs, longest), _padded(ys, longest), _padded(masks, longest)


def _padded(tensors: Sequence[torch.Tensor], length: int) -> torch.Tensor:
    """``[B, T, ...]`` tensors zero-padded along T to ``length`` and stacked: ``[H, B, length, ...]``."""
    return torch.stack([F.pad(t, (0, 0) * (t.dim() - 2) + (0, length - t.shape[1])) for t in tensors])


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

    ``config.seed`` is ignored (``seeds`` replace it). The result's ``best_epoch`` / ``best_valid`` are
    per-head lists.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"probe seeds must be distinct and at least one, got {seeds}")
    loss_fn = _loss_fn(config)
    device = config.device
    others = [torch.Generator().manual_seed(s) for s in seeds[1:]]  # seeds[0]'s generator is the loop's
    first = train.inputs[0] if train.frame_level else train.inputs
    dim = first.shape[-1]
    prepared: list[ProbeData] = []  # the training data as the steps see it (below)

    def build() -> StackedLinearProbe:
        # the first head under the loop's draw from seeds[0]'s generator, each other under its own seed's draw
        heads = [LinearProbe(dim, num_outputs)]
        heads += [seeded_build(gen, lambda: LinearProbe(dim, num_outputs)) for gen in others]
        model = StackedLinearProbe(heads).to(device)
        # clip inputs normalised once (the LayerNorm without affine acts row by row), not in every step
        prepared.append(train if train.frame_level else ProbeData(model.normalise(train.inputs), train.targets))
        return model

    def batch_loss(model: StackedLinearProbe, batch: tuple) -> tuple[torch.Tensor, int]:
        x, y, mask = batch
        x, y, heads = x.to(device), y.to(device), model.heads
        if mask is None:  # clips, normalised in build(): every head has as many items, so the sum of the
            # heads' mean losses is the mean over all items times the number of heads
            total = loss_fn(model.project(x, per_head=True).flatten(0, 1), y.flatten(0, 1), None) * heads
        else:
            logits, mask = model(x, per_head=True), mask.to(device)
            total = sum(loss_fn(logits[h], y[h], mask[h]) for h in range(heads))
        return total, x.shape[0] * x.shape[1]  # the history's train_loss: the mean over heads

    def validate_heads(model: StackedLinearProbe) -> list[float]:
        bs = config.batch_size_valid or config.batch_size
        return [validate(logits, valid) for logits in predict(model, valid, bs, device, heads=model.heads)]

    return train_loop(
        "probe",
        train,
        valid,
        build,
        lambda gen: stacked_batches(prepared[0], config.batch_size, [gen, *others]),
        batch_loss,
        validate_heads,
        replace(config, seed=seeds[0]),
        progress,
    )


__all__ = [
    "DEFAULT_PROBE_SEEDS",
    "StackedLinearProbe",
    "probe_seeds",
    "stacked_batches",
    "train_probes",
]
