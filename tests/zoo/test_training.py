"""The zoo's shared pretraining loop and the one random-weights switch."""

import pytest
import torch
from torch import nn

from xbench.encoders.training import TrainSettings, train_steps
from xbench.encoders.weights import random_weights_requested, use_pretrained


class Regression(nn.Module):
    """``y = w x`` with dropout: uses the global RNG (dropout) and the loop's generator (input noise)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 1)
        self.dropout = nn.Dropout(0.1)

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = batch + 0.01 * torch.randn(batch.shape, generator=generator)
        target = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
        return (self.linear(self.dropout(x)).squeeze(-1) - target).pow(2).mean()


BATCHES = [torch.randn(8, 4, generator=torch.Generator().manual_seed(i)) for i in range(3)]


def _params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_loss_falls_is_seeded_and_leaves_the_caller_rng_alone():
    model = Regression()
    losses = train_steps(model, model.loss, BATCHES, 60, TrainSettings(lr=0.05))
    assert len(losses) == 60 and sum(losses[-5:]) < 0.1 * sum(losses[:5])
    assert not model.training  # eval mode after the loop
    again = Regression()
    torch.manual_seed(123)  # the caller's RNG state does not matter: the loop seeds its own
    assert train_steps(again, again.loss, BATCHES, 60, TrainSettings(lr=0.05)) == losses
    other = Regression()
    assert train_steps(other, other.loss, BATCHES, 60, TrainSettings(lr=0.05), seed=1) != losses
    state = torch.get_rng_state()
    reference = torch.rand(3)
    torch.set_rng_state(state)
    train_steps(other, other.loss, BATCHES, 5)
    assert torch.equal(torch.rand(3), reference)


def test_overrides_clipping_and_a_given_optimizer():
    model = Regression()
    before = _params(model)
    train_steps(model, model.loss, BATCHES, 3, TrainSettings(lr=0.05), lr=0.0)  # override: no AdamW movement
    assert torch.equal(_params(model), before)
    steps = {}
    for clip in (1e-3, None):
        model = Regression()
        sgd = torch.optim.SGD(model.parameters(), lr=1.0)
        train_steps(model, model.loss, BATCHES, 1, optimizer=sgd, max_grad_norm=clip)
        steps[clip] = float((_params(model) - before).norm())
    assert steps[1e-3] == pytest.approx(1e-3, rel=1e-2) and steps[None] > 0.1  # clipped to the norm, or not
    with pytest.raises(TypeError):
        train_steps(model, model.loss, BATCHES, 1, learning_rate=0.1)


@pytest.mark.parametrize(("value", "random"), [("1", True), ("yes", True), ("0", False), ("", False)])
def test_random_weights_switch(monkeypatch, value, random):
    monkeypatch.setenv("XBENCH_RANDOM_WEIGHTS", value)
    assert random_weights_requested() is random
    assert use_pretrained(None) is (not random)
    assert use_pretrained(True) is True and use_pretrained(False) is False
