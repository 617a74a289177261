"""The MLP track (``xares/trainer.py``, ``xares/models/simple.py``): a LayerNorm + Linear probe on cached embeddings.

Trained by :func:`xbench.probes.loop.train_loop`: Adam (lr 1e-3 by default), a cosine learning rate
from lr to 0.1·lr over the epochs, validation every ``valid_every`` epochs, the strictly best
validation weights tested, every random choice from one seeded generator (reruns are identical).
Clip tasks train on pooled vectors ``[N, D]``; frame tasks on per-clip frames ``[T_i, D]`` with frame
targets ``[T_i, C]`` (padding masked out of the loss).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from xbench.probes.loop import TrainResult, train_loop
from xbench.probes.xares_recipe import XaresRecipe


class LinearProbe(torch.nn.Module):
    """``LayerNorm(D) → Linear(D, C)``; applied per frame on ``[B, T, D]`` input."""

    def __init__(self, dim: int, num_outputs: int) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(dim)
        self.linear = torch.nn.Linear(dim, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


@dataclass(frozen=True)
class ProbeConfig:
    """Training settings of one probe (X-ARES defaults)."""

    epochs: int = 10
    learning_rate: float = 1e-3
    batch_size: int = 32
    batch_size_valid: int | None = None
    valid_every: int = 1
    loss: str = "cross_entropy"  # or "bce"
    pos_weight: float | None = None
    seed: int = 42
    device: str = "cpu"


@dataclass
class ProbeData:
    """Inputs and targets of one split.

    Clip tasks: ``inputs`` a float tensor ``[N, D]``, ``targets`` ``[N]`` (long) or ``[N, C]`` (float).
    Frame tasks: ``inputs`` a list of ``[T_i, D]`` tensors, ``targets`` a list of ``[T_i, C]`` tensors.
    """

    inputs: torch.Tensor | list[torch.Tensor]
    targets: torch.Tensor | list[torch.Tensor]

    @property
    def frame_level(self) -> bool:
        return isinstance(self.inputs, list)

    def __len__(self) -> int:
        return len(self.inputs)

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None, order: Sequence[int] | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Yield ``(x, y, mask)``; shuffled with ``generator``, or in ``order`` (item indices), when given;
        ``mask`` is None for clips."""
        if order is None:
            order = torch.randperm(len(self), generator=generator) if generator is not None else torch.arange(len(self))
        perm = torch.as_tensor(order, dtype=torch.long)
        for start in range(0, len(self), batch_size):
            idx = perm[start : start + batch_size]
            if not self.frame_level:
                yield self.inputs[idx], self.targets[idx], None
                continue
            xs = [self.inputs[i] for i in idx.tolist()]
            ys = [self.targets[i] for i in idx.tolist()]
            lengths = torch.tensor([len(x) for x in xs])
            x = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
            y = torch.nn.utils.rnn.pad_sequence(ys, batch_first=True)
            mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
            yield x, y, mask


def _loss_fn(config: ProbeConfig) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    if config.loss == "cross_entropy":
        ce = torch.nn.CrossEntropyLoss()
        return lambda logits, y, mask: ce(logits, y.long())
    if config.loss == "bce":
        pos = None if config.pos_weight is None else torch.tensor(config.pos_weight, device=config.device)
        bce = torch.nn.BCEWithLogitsLoss(pos_weight=pos, reduction="none")

        def loss(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            per = bce(logits, y.float())
            if mask is None:
                return per.mean()
            per = per * mask[..., None]
            return per.sum() / (mask.sum() * per.shape[-1]).clamp_min(1)

        return loss
    raise ValueError(f"unknown probe loss {config.loss!r}")


@torch.no_grad()
def predict(
    model: torch.nn.Module, data: ProbeData, batch_size: int, device: str = "cpu", heads: int = 0
) -> list | np.ndarray:
    """Logits for every item: ``[N, C]`` array for clips, a list of ``[T_i, C]`` arrays for frames.

    ``heads``: the model stacks that many probes and returns ``[heads, B, ...]``; the result is a list with
    each head's logits.
    """
    model.eval()
    outs: list[list] = [[] for _ in range(heads or 1)]
    for x, _, mask in data.batches(batch_size):
        logits = model(x.to(device)).float().cpu()
        for out, head in zip(outs, logits if heads else logits[None], strict=True):
            if mask is None:
                out.append(head.numpy())
            else:
                out.extend(head[i, :n].numpy() for i, n in enumerate(mask.sum(1).tolist()))
    empty = np.zeros((0, 0), dtype=np.float32)
    joined = [out if data.frame_level else np.concatenate(out) if out else empty for out in outs]
    return joined if heads else joined[0]


def train_probe(
    train: ProbeData,
    valid: ProbeData,
    num_outputs: int,
    config: ProbeConfig,
    validate: Callable[[list | np.ndarray, ProbeData], float],
    progress: Callable[[str], None] | None = None,
    xares: XaresRecipe | None = None,
) -> TrainResult[LinearProbe]:
    """Train a :class:`LinearProbe`; ``validate(logits, valid)`` returns a higher-is-better value.

    The weights of the first epoch with a strictly better validation value are kept. ``xares``
    (``--protocol xares``): initialise and order the training items as X-ARES 0.1.3 does instead of
    from ``config.seed``.
    """
    loss_fn = _loss_fn(config)
    device = config.device

    def build() -> LinearProbe:
        first = train.inputs[0] if train.frame_level else train.inputs
        make = lambda: LinearProbe(first.shape[-1], num_outputs)  # noqa: E731
        return (make() if xares is None else xares.build(make)).to(device)

    def batch_loss(model: LinearProbe, batch: tuple) -> tuple[torch.Tensor, int]:
        x, y, mask = batch
        x, y = x.to(device), y.to(device)
        return loss_fn(model(x), y, None if mask is None else mask.to(device)), len(x)

    return train_loop(
        "probe",
        train,
        valid,
        build,
        (
            (lambda gen: train.batches(config.batch_size, gen))
            if xares is None
            else xares.batches(lambda order: train.batches(config.batch_size, order=order))
        ),
        batch_loss,
        lambda model: validate(predict(model, valid, config.batch_size_valid or config.batch_size, device), valid),
        config,
        progress,
    )


def stack_targets(targets: Sequence) -> torch.Tensor:
    """Targets of clip items as one tensor: long ``[N]`` for class indices, float ``[N, C]`` for multi-hot."""
    arr = np.asarray(targets)
    return torch.from_numpy(arr.astype(np.float32)) if arr.ndim == 2 else torch.from_numpy(arr.astype(np.int64))
