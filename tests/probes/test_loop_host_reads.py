"""The training loop reads the loss from the device once per epoch, not at every step (each read waits for the
device), and the epoch's mean loss is what per-step reads gave."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xbench.probes.loop import train_loop


@dataclass
class Config:
    epochs: int = 3
    learning_rate: float = 0.01
    valid_every: int = 1
    seed: int = 0


def test_the_loss_is_read_once_per_epoch_and_averaged_as_before(monkeypatch):
    x, y = torch.randn(40, 5, generator=torch.Generator().manual_seed(1)), torch.randn(40, 1)
    seen: list[tuple[torch.Tensor, int]] = []
    losses: set[int] = set()  # storage of every step's loss
    alive: list[torch.Tensor] = []  # held, so no later tensor reuses a loss's storage

    def batch_loss(model, idx):
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        seen.append((loss.detach().clone(), len(idx)))
        losses.add(loss.data_ptr())
        alive.append(loss)
        return loss, len(idx)

    reads = []

    def counting(real):
        return lambda self: reads.append(self.data_ptr()) or real(self) if self.data_ptr() in losses else real(self)

    for name in ("__float__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name)))
    result = train_loop(
        "test probe", x, x, lambda: torch.nn.Linear(5, 1),
        lambda gen: torch.randperm(40, generator=gen).split(7), batch_loss, lambda model: 0.0, Config(),
    )  # fmt: skip
    monkeypatch.undo()
    assert reads == []  # no per-step float(loss) / loss.item() (Adam's CPU step counters are not the loss)
    per_epoch = len(seen) // 3
    for epoch, record in enumerate(result.history):
        steps = seen[epoch * per_epoch : (epoch + 1) * per_epoch]
        expected = sum(float(loss) * n for loss, n in steps) / sum(n for _, n in steps)
        assert record["train_loss"] == expected
