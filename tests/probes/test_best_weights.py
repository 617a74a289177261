"""Best-on-valid: the probe that comes back is the one of the epoch with the best validation value.

The expectation is independent of the loop's bookkeeping: during training each validation records the
model's own weights and predictions, and the returned model must equal the record of the epoch whose
scripted validation value was the (first strictly) best, and differ from the last epoch's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from xbench.probes.linear import ProbeConfig, ProbeData, predict, train_probe
from xbench.probes.loop import train_loop


def _data(seed: int, n: int = 96, d: int = 8, c: int = 3) -> ProbeData:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=gen)
    centres = torch.randn(c, d, generator=torch.Generator().manual_seed(5))
    return ProbeData(centres[y] + torch.randn(n, d, generator=gen), y)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "values, best",
    [
        ([0.2, 0.9, 0.5, 0.1, 0.3], 1),  # best early, worse afterwards
        ([0.5, 0.5, 0.4, 0.5, 0.1], 0),  # ties do not replace the first best
        ([0.1, 0.2, 0.3, 0.4, 0.5], 4),  # the last epoch is best
    ],
)
def test_train_probe_returns_the_best_epochs_model(values, best):
    train, valid = _data(0), _data(1)
    seen: list[np.ndarray] = []
    scripted = iter(values)

    def validate(logits, data):
        seen.append(np.array(logits, copy=True))
        return next(scripted)

    cfg = ProbeConfig(epochs=len(values), batch_size=16, learning_rate=5e-2)
    result = train_probe(train, valid, 3, cfg, validate)
    assert len(seen) == len(values)
    assert not any(np.array_equal(seen[i], seen[j]) for i in range(len(seen)) for j in range(i))  # it trained
    got = predict(result.model, valid, 16)
    np.testing.assert_array_equal(got, seen[best])
    if best != len(values) - 1:
        assert not np.array_equal(got, seen[-1])


@dataclass
class _Config:
    epochs: int
    learning_rate: float = 0.1
    valid_every: int = 1
    seed: int = 0


@pytest.mark.parametrize(
    "epochs, valid_every, values, best",
    [
        (4, 1, [0.3, 0.8, 0.2, 0.1], 1),
        (6, 2, [0.9, 0.1, 0.5], 1),  # validated after epochs 2, 4, 6 (1-based): the first is best
        (6, 3, [0.1, 0.7], 5),
    ],
)
def test_train_loop_restores_the_validated_weights(epochs, valid_every, values, best):
    """A one-weight model on a loss that keeps moving it: each epoch ends with different weights."""
    records: dict[int, dict[str, torch.Tensor]] = {}
    scripted = iter(values)
    epoch_of_call: list[int] = []

    def validate(model):
        epoch = (len(epoch_of_call) + 1) * valid_every - 1
        epoch_of_call.append(epoch)
        records[epoch] = _snapshot(model)
        return next(scripted)

    def loss(model, batch):
        return (model.weight.sum() - 100.0) ** 2, 1  # far from its minimum: every step moves the weight

    result = train_loop(
        "toy",
        [0],
        [0],
        lambda: torch.nn.Linear(1, 1, bias=False),
        lambda gen: [None, None],
        loss,
        validate,
        _Config(epochs=epochs, valid_every=valid_every),
    )
    assert epoch_of_call == list(range(valid_every - 1, epochs, valid_every))
    final = _snapshot(result.model)
    assert _same(final, records[best])
    assert result.best_epoch == best and result.best_valid == values[epoch_of_call.index(best)]
    later = [e for e in records if e > best]
    assert all(not _same(final, records[e]) for e in later)
