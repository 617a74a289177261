"""Where zoo weights come from: a lazy, checksum-verified download into a per-user cache, or a seeded draw.

``fetch_weights(card)`` returns the local path of a card's weight file: from the cache if present
(and verified), else downloaded to a temporary name, verified against ``weights_sha256`` and renamed
into place. Offline (``XBENCH_OFFLINE=1`` or ``offline=True``) or on a network error it raises
:class:`WeightsUnavailableError` naming the file to place and the folder to place it in.

``XBENCH_RANDOM_WEIGHTS=1`` (set by the test suite) makes every zoo entry built with ``pretrained=None``
use seeded random weights instead (:func:`use_pretrained`); :func:`seeded` is the seeding they use.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from xbench.core.atomic_io import sha256_file, temp_path
from xbench.core.paths import cache_root
from xbench.encoders.card import ZooCard

RANDOM_WEIGHTS_ENV = "XBENCH_RANDOM_WEIGHTS"
OFFLINE_ENV = "XBENCH_OFFLINE"


class WeightsUnavailableError(FileNotFoundError):
    """The weights are not in the cache and cannot be downloaded."""


class WeightsChecksumError(ValueError):
    """A weight file's sha256 differs from the card's."""


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is set to anything but ``""``/``0``."""
    return os.environ.get(name, "") not in ("", "0")


def random_weights_requested() -> bool:
    """True when ``XBENCH_RANDOM_WEIGHTS`` asks every zoo entry for seeded random weights."""
    return env_flag(RANDOM_WEIGHTS_ENV)


def use_pretrained(pretrained: bool | None) -> bool:
    """``pretrained`` when given, else True unless :func:`random_weights_requested`."""
    return not random_weights_requested() if pretrained is None else pretrained


@contextmanager
def seeded(seed: int, devices: Sequence[int] = ()) -> Iterator[None]:
    """Run the block with torch's global RNG (CPU and the CUDA ``devices``) seeded; restore the caller's after."""
    import torch

    with torch.random.fork_rng(devices=list(devices)):
        torch.manual_seed(seed)
        yield


def weights_dir(root: str | Path | None = None) -> Path:
    """Folder of cached zoo weights: ``$XBENCH_WEIGHTS``, else ``<cache root>/weights``."""
    env = os.environ.get("XBENCH_WEIGHTS")
    if root is not None:
        return Path(root)
    return Path(env).expanduser() if env else cache_root() / "weights"


def _verify(card: ZooCard, path: Path) -> None:
    if card.weights_sha256 is None:
        return
    actual = sha256_file(path)
    if actual != card.weights_sha256:
        raise WeightsChecksumError(
            f"zoo encoder {card.name!r}: {path} has sha256 {actual}, expected {card.weights_sha256}"
        )


def fetch_weights(card: ZooCard, root: str | Path | None = None, offline: bool | None = None) -> Path:
    """Local path of ``card``'s weights, downloading and verifying them when needed."""
    if not card.weights_file:
        raise WeightsUnavailableError(f"zoo encoder {card.name!r} declares no weight file")
    folder = weights_dir(root) / card.name
    path = folder / card.weights_file
    if path.is_file():
        _verify(card, path)
        return path
    offline = env_flag(OFFLINE_ENV) if offline is None else offline
    place = f"place {card.weights_file} (from {card.weights_url or 'the model authors'}) at {path}"
    if offline or not card.weights_url:
        raise WeightsUnavailableError(f"zoo encoder {card.name!r}: weights not in the cache; {place}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)  # unique per process, so concurrent fetches never share it
    try:
        with open(tmp, "xb") as out, urllib.request.urlopen(card.weights_url, timeout=60) as resp:
            shutil.copyfileobj(resp, out, 1 << 20)
        _verify(card, tmp)
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsUnavailableError(f"zoo encoder {card.name!r}: download failed ({exc}); {place}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path
