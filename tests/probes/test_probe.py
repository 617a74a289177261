import numpy as np
import pytest
import torch

from xbench.probes.linear import ProbeConfig, ProbeData, predict, stack_targets, train_probe
from xbench.probes.loop import cosine_lr
from xbench.scoring.metrics import accuracy


def _data(seed, n=240, d=16, c=4):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(c, d, generator=torch.Generator().manual_seed(99)) * 2
    y = torch.randint(0, c, (n,), generator=gen)
    return ProbeData(centres[y] + torch.randn(n, d, generator=gen), y)


def _acc(logits, data):
    return accuracy(logits, data.targets.numpy())


def test_cosine_schedule_matches_xares_values():
    got = [round(cosine_lr(1e-3, e, 10) * 1e4, 3) for e in range(10)]
    assert got == [10.0, 9.78, 9.141, 8.145, 6.891, 5.5, 4.109, 2.855, 1.859, 1.22]


def test_probe_learns_and_reruns_are_identical():
    train, valid, test = _data(0), _data(1), _data(2)
    cfg = ProbeConfig(epochs=10, batch_size=32, learning_rate=1e-2)
    a = train_probe(train, valid, 4, cfg, _acc)
    b = train_probe(train, valid, 4, cfg, _acc)
    assert _acc(predict(a.model, test, 64), test) > 0.9
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    c = train_probe(train, valid, 4, ProbeConfig(epochs=10, batch_size=32, learning_rate=1e-2, seed=7), _acc)
    assert not torch.equal(a.model.linear.weight, c.model.linear.weight)


def test_global_rng_untouched():
    state = torch.get_rng_state()
    train_probe(_data(0), _data(1), 4, ProbeConfig(epochs=1), _acc)
    assert torch.equal(state, torch.get_rng_state())


def test_best_validation_epoch_is_kept():
    values = iter([0.5, 0.9, 0.9, 0.1])
    result = train_probe(_data(0), _data(1), 4, ProbeConfig(epochs=4), lambda logits, data: next(values))
    assert result.best_epoch == 1 and result.best_valid == 0.9  # first of the tie, strictly better only


def test_frame_probe_with_bce_and_padding():
    gen = torch.Generator().manual_seed(0)
    xs, ys = [], []
    for i in range(40):
        t = 5 + i % 7
        y = (torch.rand(t, 3, generator=gen) > 0.5).float()
        xs.append(y @ torch.eye(3, 8) * 3 + 0.1 * torch.randn(t, 8, generator=gen))
        ys.append(y)
    data = ProbeData(xs, ys)
    cfg = ProbeConfig(epochs=20, batch_size=8, loss="bce", pos_weight=2.0, learning_rate=1e-2)

    def frame_acc(logits, d):
        return float(np.mean([((lg > 0) == (t.numpy() > 0.5)).mean() for lg, t in zip(logits, d.targets, strict=True)]))

    result = train_probe(data, data, 3, cfg, frame_acc)
    logits = predict(result.model, data, 8)
    assert [len(lg) for lg in logits] == [len(x) for x in xs]
    assert frame_acc(logits, data) > 0.9


def test_empty_split_errors():
    empty = ProbeData(torch.zeros(0, 16), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="train split is empty"):
        train_probe(empty, _data(1), 4, ProbeConfig(epochs=1), _acc)


def test_stack_targets():
    assert stack_targets([1, 2]).dtype == torch.int64
    assert stack_targets([[0, 1], [1, 0]]).dtype == torch.float32
