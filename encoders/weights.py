"""Where zoo weights come from: a lazy, checksum-verified download into a per-user cache, or a seeded draw.

``fetch_weights(card)`` returns the local path of a card's weight file: from the cache if present
(and verified), else from the Hugging Face hub through ``huggingface_hub`` (weights that live there), else
downloaded with the project's fetcher (:mod:`xbench.data.zenodo`: HTTP Range resume, a progress bar, a
Zenodo record's size and md5), verified and renamed into place. The sha256 is checked against the card's
``weights_sha256``, else recorded on the first download (``<file>.sha256.json``) and checked on every
later use. Offline (``XBENCH_OFFLINE=1`` or ``offline=True``) or on a network error it raises
:class:`WeightsUnavailableError` naming the file to place and the folder to place it in.

``XBENCH_RANDOM_WEIGHTS=1`` (set by the test suite) makes every zoo entry built with ``pretrained=None``
use seeded random weights instead (:func:`use_pretrained`); :func:`seeded` is the seeding they use.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from xbench.core.atomic_io import atomic_write_json, sha256_file
from xbench.core.paths import cache_root
from xbench.encoders.card import ZooCard

if TYPE_CHECKING:
    from xbench.data.zenodo import RecordFile

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


def record_path(path: Path) -> Path:
    """The JSON beside a weight file recording its sha256 (written on first download or first use)."""
    return path.with_name(path.name + ".sha256.json")


def recorded_sha256(path: Path) -> str | None:
    """The sha256 recorded for the weight file ``path``, or None."""
    try:
        return str(json.loads(record_path(path).read_text())["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record(path: Path, sha256: str, size: int, source: str) -> None:
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(record_path(path), {"sha256": sha256, "size": size, "source": source, "recorded": stamp})


def verify_weights(card: ZooCard, path: Path, record_at: Path | None = None, source: str = "") -> str:
    """Check ``path`` against the card's sha256, else against the one recorded at its first download (or first
    use, recorded now); :class:`WeightsChecksumError` naming the file on a mismatch. Returns the sha256."""
    record_at = record_at or path
    expected = card.weights_sha256 or recorded_sha256(record_at)
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        where = "the card's" if card.weights_sha256 else f"the one recorded in {record_path(record_at)}"
        raise WeightsChecksumError(
            f"zoo encoder {card.name!r}: {path} has sha256 {actual}, expected {expected} ({where}); the file changed "
            "or is corrupt: delete it to download it again"
        )
    if recorded_sha256(record_at) is None:
        origin = source or card.weights_url or card.weights_hub or "placed by hand"
        _record(record_at, actual, path.stat().st_size, origin)
    return actual


def verify_package_weights(card: ZooCard) -> list[Path]:
    """The card's :attr:`~ZooCard.package_weights` files as installed, each checked against its pinned sha256;
    :class:`WeightsChecksumError` naming the file, the installed release and the expected sha256 otherwise.

    A package that is not installed is left to the encoder's import (its error names the extra to install).
    """
    import importlib.metadata
    import importlib.util

    found = []
    for relative, expected in card.package_weights:
        package = relative.split("/")[0]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(list(spec.submodule_search_locations)[0]).parent / relative
        try:
            release = f"{package} {importlib.metadata.version(package)}"
        except importlib.metadata.PackageNotFoundError:
            release = package
        if not path.is_file():
            raise WeightsChecksumError(f"zoo encoder {card.name!r}: {release} has no {relative} (expected {path})")
        actual = sha256_file(path)
        if actual != expected:
            raise WeightsChecksumError(
                f"zoo encoder {card.name!r}: {path} ({release}) has sha256 {actual}, the card pins {expected}: "
                f"another release of {package} or a changed file; install the release the card names"
            )
        found.append(path)
    return found


_ZENODO_FILE = re.compile(r"^(https?://[^/]+)(?:/api)?/records/(\d+)/files/([^/?]+)")


def _url_file(card: ZooCard, url: str) -> RecordFile:
    """The transfer of ``url``: a Zenodo record file with the record's size and md5, else the bare URL."""
    from xbench.data.zenodo import RecordFile, fetch_record

    match = _ZENODO_FILE.match(url)
    if match:
        base, record_id, name = match.group(1), match.group(2), urllib.parse.unquote(match.group(3))
        record = fetch_record(record_id, base_url=base)
        for file in record.files:
            if file.name == name:
                return RecordFile(card.weights_file or name, file.size, file.checksum, url)
        raise WeightsUnavailableError(f"zoo encoder {card.name!r}: Zenodo record {record_id} has no file {name!r}")
    return RecordFile(card.weights_file or Path(urllib.parse.urlsplit(url).path).name, None, None, url)


def _download_url(card: ZooCard, path: Path, progress: bool | None, backoff: float) -> None:
    """Fetch ``card.weights_url`` to ``path`` with the project's fetcher (HTTP Range resume, a progress bar, the
    Zenodo record's size and md5 when it is a Zenodo file), then check and record its sha256."""
    from xbench.data.zenodo import fetch_file

    staging = path.parent / ".download"  # a fixed folder: the .part of an interrupted download resumes there
    fetched = fetch_file(_url_file(card, str(card.weights_url)), staging, progress=progress, backoff=backoff)
    try:
        verify_weights(card, fetched.path, record_at=path, source=str(card.weights_url))
    except WeightsChecksumError:
        fetched.path.unlink(missing_ok=True)
        record_path(path).unlink(missing_ok=True)
        raise
    os.replace(fetched.path, path)


def _hub_file(card: ZooCard, offline: bool) -> Path:
    """The card's file in the Hugging Face cache (``huggingface_hub``: resume, progress, the usual cache layout).

    The file is ``card.weights_hub_file``, else the repository's only ``.pt`` file."""
    from huggingface_hub import HfApi, hf_hub_download

    repo = str(card.weights_hub)
    name = card.weights_hub_file
    if name is None:
        if offline:
            raise LookupError(f"offline: listing {repo} needs the network")
        candidates = sorted(f for f in HfApi().list_repo_files(repo) if f.endswith(".pt"))
        if len(candidates) != 1:
            raise LookupError(f"{repo} holds {len(candidates)} .pt files ({', '.join(candidates[:4])}), not one")
        name = candidates[0]
    return Path(hf_hub_download(repo, name, local_files_only=offline))


def fetch_weights(
    card: ZooCard,
    root: str | Path | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
    backoff: float = 1.0,
) -> Path:
    """Local path of ``card``'s weights, downloading and verifying them when needed.

    A file in ``<weights>/<card>/<weights_file>`` is used first (placed by hand, or downloaded earlier);
    weights on the Hugging Face hub (``weights_hub``) come from its cache through ``huggingface_hub``; other
    URLs through :func:`xbench.data.zenodo.fetch_file`, resuming an interrupted download. Every file is
    checked against the card's sha256, else the sha256 recorded at its first download (:func:`verify_weights`).
    One process at a time downloads a card's file (a claim beside it).
    """
    from xbench.core.claims import hold
    from xbench.data.zenodo import ZenodoError

    if not card.weights_file:
        raise WeightsUnavailableError(f"zoo encoder {card.name!r} declares no weight file")
    folder = weights_dir(root) / card.name
    path = folder / card.weights_file
    if path.is_file():
        verify_weights(card, path)
        return path
    offline = env_flag(OFFLINE_ENV) if offline is None else offline
    origin = card.weights_url or (f"https://huggingface.co/{card.weights_hub}" if card.weights_hub else None)
    place = f"place {card.weights_file} (from {origin or 'the model authors'}) at {path}"
    if card.weights_hub:
        try:
            hub = _hub_file(card, offline)
        except Exception as exc:  # huggingface_hub: not cached offline, or a hub or network error
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WeightsUnavailableError(f"zoo encoder {card.name!r}: {reason}; {place}") from exc
        verify_weights(card, hub, record_at=path, source=f"hf://{card.weights_hub}")
        return hub
    if offline or not card.weights_url:
        raise WeightsUnavailableError(f"zoo encoder {card.name!r}: weights not in the cache; {place}")
    folder.mkdir(parents=True, exist_ok=True)
    with hold(folder / f"{card.weights_file}.claim", what=f"download of {card.name} weights"):
        if not path.is_file():  # else another process downloaded it while this one waited
            try:
                _download_url(card, path, progress, backoff)
            except (ZenodoError, urllib.error.URLError, OSError) as exc:
                raise WeightsUnavailableError(f"zoo encoder {card.name!r}: download failed ({exc}); {place}") from exc
    verify_weights(card, path)
    return path
