"""Lazy, checksum-verified download of zoo weights into a per-user cache.

``fetch_weights(card)`` returns the local path of a card's weight file: from the cache if present
(and verified), else downloaded to a temporary name, verified against ``weights_sha256`` and renamed
into place. Offline (``XBENCH_OFFLINE=1`` or ``offline=True``) or on a network error it raises
:class:`WeightsUnavailableError` naming the file to place and the folder to place it in.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from xbench.core.paths import cache_root
from xbench.encoders.card import ZooCard


class WeightsUnavailableError(FileNotFoundError):
    """The weights are not in the cache and cannot be downloaded."""


class WeightsChecksumError(ValueError):
    """A weight file's sha256 differs from the card's."""


def weights_dir(root: str | Path | None = None) -> Path:
    """Folder of cached zoo weights: ``$XBENCH_WEIGHTS``, else ``<cache root>/weights``."""
    env = os.environ.get("XBENCH_WEIGHTS")
    if root is not None:
        return Path(root)
    return Path(env).expanduser() if env else cache_root() / "weights"


def sha256sum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(card: ZooCard, path: Path) -> None:
    if card.weights_sha256 is None:
        return
    actual = sha256sum(path)
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
    offline = os.environ.get("XBENCH_OFFLINE", "") not in ("", "0") if offline is None else offline
    place = f"place {card.weights_file} (from {card.weights_url or 'the model authors'}) at {path}"
    if offline or not card.weights_url:
        raise WeightsUnavailableError(f"zoo encoder {card.name!r}: weights not in the cache; {place}")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{card.weights_file}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(card.weights_url, timeout=60) as resp:
            shutil.copyfileobj(resp, out, 1 << 20)
        _verify(card, Path(tmp))
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsUnavailableError(f"zoo encoder {card.name!r}: download failed ({exc}); {place}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
