"""Probe heads of several seeds trained together equal probes trained alone with the same batches, seed by seed."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from xbench.probes import linear
from xbench.probes.linear import LinearProbe, ProbeConfig, ProbeData, predict, train_probe
from xbench.probes.loop import seeded_build
from xbench.probes.multiseed import StackedLinearProbe, probe_seeds, train_probes
from xbench.scoring.metrics import accuracy, mean_average_precision

SEEDS = [42, 43, 44, 45, 46]


def _clips(seed, n, d=12, c=4, spread=0.6):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(c, d, generator=torch.Generator().manual_seed(99)) * spread
    y = torch.randint(0, c, (n,), generator=gen)
    return ProbeData(centres[y] + torch.randn(n, d, generator=gen), y)


def _acc(logits, data):
    return accuracy(logits, data.targets.numpy())


def _alone(monkeypatch, train, valid, outputs, cfg, validate, seeds, h):
    """``train_probe`` of the first seed (its batches), its probe initialised as seed ``seeds[h]`` initialises."""
    dim = (train.inputs[0] if train.frame_level else train.inputs).shape[-1]
    init = seeded_build(torch.Generator().manual_seed(seeds[h]), lambda: LinearProbe(dim, outputs))
    with monkeypatch.context() as patch:
        patch.setattr(linear, "LinearProbe", lambda *args: copy.deepcopy(init))
        return train_probe(train, valid, outputs, dataclasses.replace(cfg, seed=seeds[0]), validate)


def _assert_heads_equal_alone(monkeypatch, train, valid, test, outputs, cfg, validate, seeds=SEEDS, atol=1e-4):
    together = train_probes(train, valid, outputs, cfg, seeds, validate)
    heads = predict(together.model, test, 16, heads=len(seeds))
    for h, seed in enumerate(seeds):
        alone = _alone(monkeypatch, train, valid, outputs, cfg, validate, seeds, h)
        assert together.best_epoch[h] == alone.best_epoch, seed
        assert together.best_valid[h] == pytest.approx(alone.best_valid), seed
        mine = predict(alone.model, test, 16)
        if isinstance(mine, list):
            for a, b in zip(heads[h], mine, strict=True):
                np.testing.assert_allclose(a, b, atol=atol)
        else:
            np.testing.assert_allclose(heads[h], mine, atol=atol)
        for name, value in together.model.head(h).state_dict().items():
            torch.testing.assert_close(value, alone.model.state_dict()[name], atol=atol, rtol=1e-4)
    return together


def test_clip_heads_equal_single_seed_probes(monkeypatch):
    cfg = ProbeConfig(epochs=8, batch_size=16, learning_rate=1e-2)
    together = _assert_heads_equal_alone(monkeypatch, _clips(0, 150), _clips(1, 60), _clips(2, 60), 4, cfg, _acc)
    # the seeds really differ: not every head ends at the same epoch with the same weights
    assert len({tuple(p.flatten().tolist()) for p in together.model.weight}) == len(SEEDS)
    # the first seed is the task's seed: its head is the single probe of --probe-seeds 1 (and of before)
    alone = train_probe(_clips(0, 150), _clips(1, 60), 4, cfg, _acc)
    torch.testing.assert_close(together.model.head(0).linear.weight, alone.model.linear.weight, atol=1e-4, rtol=1e-4)


def test_multilabel_heads_with_bce_equal_single_seed_probes(monkeypatch):
    gen = torch.Generator().manual_seed(3)
    mix = torch.randn(5, 10, generator=torch.Generator().manual_seed(1))

    def data(n):
        y = (torch.rand(n, 5, generator=gen) < 0.3).float()
        return ProbeData(y @ mix + torch.randn(n, 10, generator=gen), y)

    def m_ap(logits, d):
        return mean_average_precision(logits, d.targets.numpy())

    cfg = ProbeConfig(epochs=6, batch_size=16, learning_rate=5e-3, loss="bce", pos_weight=1.5)
    _assert_heads_equal_alone(monkeypatch, data(120), data(40), data(40), 5, cfg, m_ap, seeds=[7, 3, 11])


def test_frame_heads_with_padding_equal_single_seed_probes(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    xs, ys = [], []
    for i in range(36):
        t = 4 + (i * 5) % 11  # lengths differ, so each seed's batch pads differently
        y = (torch.rand(t, 3, generator=gen) > 0.5).float()
        xs.append(y @ torch.eye(3, 8) + 0.7 * torch.randn(t, 8, generator=gen))
        ys.append(y)
    data = ProbeData(xs, ys)

    def frame_acc(logits, d):
        return float(np.mean([((lg > 0) == (t.numpy() > 0.5)).mean() for lg, t in zip(logits, d.targets, strict=True)]))

    cfg = ProbeConfig(epochs=5, batch_size=8, loss="bce", pos_weight=2.0, learning_rate=1e-2)
    _assert_heads_equal_alone(monkeypatch, data, data, data, 3, cfg, frame_acc, seeds=[1, 2, 3])


def test_each_head_keeps_its_own_strictly_best_epoch(monkeypatch):
    """Scripted validation values per seed: every head keeps the weights of its own first best epoch."""
    scripts = {42: [0.5, 0.9, 0.9, 0.1], 43: [0.7, 0.2, 0.3, 0.8], 44: [0.4, 0.4, 0.4, 0.4]}
    train, valid = _clips(0, 64), _clips(1, 32)
    cfg = ProbeConfig(epochs=4, batch_size=16, learning_rate=1e-2)
    order = iter([scripts[s][e] for e in range(4) for s in scripts])  # one value per head, heads in seed order
    together = train_probes(train, valid, 4, cfg, list(scripts), lambda logits, d: next(order))
    assert together.best_epoch == [1, 3, 0] and together.best_valid == [0.9, 0.8, 0.4]
    for h, values in enumerate(scripts.values()):
        vals = iter(values)
        alone = _alone(monkeypatch, train, valid, 4, cfg, lambda logits, d, vals=vals: next(vals), list(scripts), h)
        assert alone.best_epoch == together.best_epoch[h]
        weight = together.model.head(h).linear.weight
        torch.testing.assert_close(weight, alone.model.linear.weight, atol=1e-5, rtol=1e-4)


def test_stacked_probe_forward_matches_each_linear_probe():
    torch.manual_seed(0)
    heads = [LinearProbe(6, 3) for _ in range(4)]
    for h in heads:  # non-trivial affine
        torch.nn.init.normal_(h.norm.weight)
        torch.nn.init.normal_(h.norm.bias)
    stacked = StackedLinearProbe(heads)
    frames, clips = torch.randn(5, 7, 6), torch.randn(9, 6)  # [B, T, D] and [B, D]
    with torch.no_grad():
        for x in (frames, clips):
            out = stacked(x)
            assert out.shape == (4, *x.shape[:-1], 3)
            for h, head in enumerate(heads):
                torch.testing.assert_close(out[h], head(x), atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(stacked.head(h)(x), head(x))


def test_each_head_gets_its_own_gradient():
    torch.manual_seed(1)
    stacked = StackedLinearProbe([LinearProbe(6, 3) for _ in range(3)])
    x = torch.randn(4, 6)
    target = torch.randn(3, 4, 3)
    (stacked(x) - target).pow(2).sum().backward()
    for h in range(3):
        ref = stacked.head(h)
        (ref(x) - target[h]).pow(2).sum().backward()
        torch.testing.assert_close(stacked.weight.grad[h], ref.linear.weight.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(stacked.norm_weight.grad[h], ref.norm.weight.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(stacked.norm_bias.grad[h], ref.norm.bias.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(stacked.bias.grad[h], ref.linear.bias.grad, atol=1e-5, rtol=1e-5)


def test_global_rng_untouched_and_bad_seeds_refused():
    state = torch.get_rng_state()
    train_probes(_clips(0, 40), _clips(1, 20), 4, ProbeConfig(epochs=1), [1, 2], _acc)
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(ValueError, match="distinct"):
        train_probes(_clips(0, 40), _clips(1, 20), 4, ProbeConfig(epochs=1), [1, 1], _acc)
    assert probe_seeds(42, 3) == [42, 43, 44]
    with pytest.raises(ValueError, match="at least 1"):
        probe_seeds(42, 0)
