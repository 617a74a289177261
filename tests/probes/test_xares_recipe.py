"""X-ARES's probe initialisation and training order (``--protocol xares``), against webdataset and torch.

The end-to-end check against pip xares's own MLP stage is tests/pipeline/test_xares_oracle.py.
"""

import random

import pytest
import torch

from xbench.probes.linear import LinearProbe, ProbeConfig, ProbeData, train_probe
from xbench.probes.xares_recipe import XaresRecipe, buffer_shuffle, encoded_shard_sizes, loader_iterations

from conftest import require_oracle


@pytest.mark.parametrize(
    ("n", "bufsize", "initial"), [(0, 2000, 500), (7, 2000, 500), (1600, 2000, 500), (4500, 2000, 500), (700, 512, 100)]
)
def test_buffer_shuffle_is_webdatasets(n, bufsize, initial):
    filters = require_oracle("webdataset.filters")
    ours = list(buffer_shuffle(range(n), bufsize, initial, random.Random(3)))
    theirs = list(filters._shuffle(iter(range(n)), bufsize, initial, random.Random(3)))
    assert ours == theirs
    assert sorted(ours) == list(range(n))


def test_shard_order_is_webdatasets_detshuffle():
    """X-ARES's shard-list shuffle is deterministic: seed 0 + the epoch number."""
    wds = require_oracle("webdataset")
    stage = wds.detshuffle(bufsize=2000, initial=500)
    shards = [f"shard{i}" for i in range(9)]
    for epoch in range(4):
        theirs = list(stage.run(iter(shards)))
        ours = [shards[i] for i in buffer_shuffle(range(9), 2000, 500, random.Random(epoch))]
        assert ours == theirs


def test_orders_are_permutations_differ_by_epoch_and_repeat_per_recipe():
    recipe = XaresRecipe(seed=42, fold=1, shard_sizes=(2000, 600, 2000, 1), epochs=3, valid_every=1)
    first, second = recipe.orders(), recipe.orders()
    epochs = [next(first) for _ in range(3)]
    assert all(sorted(e) == list(range(4601)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    assert [next(second) for _ in range(3)] == epochs  # reruns are identical
    other = XaresRecipe(seed=42, fold=2, shard_sizes=(2000, 600, 2000, 1), epochs=3, valid_every=1)
    assert next(other.orders()) != epochs[0]


def test_shard_sizes_and_loader_iterations():
    assert encoded_shard_sizes([4500, 400, 2000], 2000) == (2000, 2000, 500, 400, 2000)
    assert encoded_shard_sizes([0], 2000) == ()
    assert loader_iterations(10, 1) == 21  # 10 training epochs, 10 validations, 1 test pass
    assert loader_iterations(3, 2) == 5


def test_build_replays_xares_global_rng_and_restores_it():
    """Fold k's probe: torch.manual_seed(seed), then per earlier fold its probe's init and its loader draws."""
    torch.manual_seed(123)
    before = torch.get_rng_state()
    built = [XaresRecipe(7, k, (5,), epochs=4, valid_every=2).build(lambda: LinearProbe(6, 3)) for k in range(3)]
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(7)
    for k in range(3):
        expected = torch.nn.Linear(6, 3)  # X-ARES's Mlp: LayerNorm (no draws) then Linear
        assert torch.equal(built[k].linear.weight, expected.weight) and torch.equal(built[k].linear.bias, expected.bias)
        for _ in range(4 + 2 + 1):  # each DataLoader iterator draws its base seed from the global RNG
            torch.empty((), dtype=torch.int64).random_()


def test_train_probe_with_recipe_is_deterministic_and_uses_its_order():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=gen)
    y = (x[:, 0] > 0).long()
    data = ProbeData(x, y)
    cfg = ProbeConfig(epochs=3, batch_size=8)
    recipe = XaresRecipe(42, 0, (40,), epochs=3, valid_every=1)

    def run(xares):
        result = train_probe(data, data, 2, cfg, lambda logits, d: 0.0, xares=xares)
        return torch.cat([p.detach().flatten() for p in result.model.parameters()])

    assert torch.equal(run(recipe), run(recipe))
    assert not torch.equal(run(recipe), run(None))
    seen = []
    orders = recipe.orders()
    epoch_batches = recipe.batches(lambda order: seen.append(order) or data.batches(8, order=order))
    for _ in range(2):
        list(epoch_batches(None))
    assert seen == [next(orders), next(orders)]
