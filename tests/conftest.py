import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
BROKEN = FIXTURES / "broken_encoders.py"

torch.set_num_threads(int(os.environ.get("XBENCH_NUM_THREADS", "1")))

# Zoo encoders build with seeded random weights under test: no weight downloads, same architecture.
os.environ.setdefault("XBENCH_RANDOM_WEIGHTS", "1")
# The registry-wide check of a zoo card runs only with `-m slow` when the card has more than this many
# parameters, or when an earlier card (by name) of its family has the same shape: under random weights
# the two are the same model (e.g. iterations of one architecture that differ only in their weights).
SLOW_ZOO_PARAMETERS = 200_000_000


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    from xbench.encoders.registry import all_cards

    cards = all_cards()
    seen, repeated = set(), set()
    for name in sorted(cards):
        card = cards[name]
        shape = (card.family, card.parameters, card.output_dim, card.hop_size_in_ms)
        if card.parameters is not None and shape in seen:
            repeated.add(name)
        seen.add(shape)
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", "")
        name = item.callspec.params.get("name") if hasattr(item, "callspec") else None
        card = cards.get(name) if module.endswith("test_zoo_registry") and name else None
        if card is not None and ((card.parameters or 0) > SLOW_ZOO_PARAMETERS or name in repeated):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def broken_module():
    from xbench.encoder.contract import _import_file

    return _import_file(BROKEN)
