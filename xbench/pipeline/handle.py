"""The run's encoder: its identity (cache keys, result folder) up front, the model itself only when needed.

An encoder named by a file, zoo name or ``module:Name`` is looked up in the identity cache
(:class:`xbench.encoder.identity.IdentityCache`) first: while the files its last building read are unchanged,
the run knows its identity without building it, and a run whose units and results all exist never builds it.
When a unit is missing, the encoder is built then, and its identity is taken again and must equal the cached
one (else :class:`StaleIdentityError`, and the entry is dropped). An ``nn.Module`` instance is used as it is.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from xbench._version import __version__
from xbench.encoder.contract import (
    EncoderError,
    HarnessedEncoder,
    HarnessOptions,
    apply_protocol,
    load_encoder,
    protocol_identity,
    validate_attributes,
)
from xbench.encoder.identity import (
    IdentityCache,
    encoder_fingerprint,
    encoder_identity,
    encoder_slug,
    recording_reads,
    source_files,
)
from xbench.encoders.weights import OFFLINE_ENV, RANDOM_WEIGHTS_ENV

__all__ = ["EncoderHandle", "StaleIdentityError", "identity_key", "open_encoder"]

# environment variables that change what a named encoder builds into
IDENTITY_ENV = (RANDOM_WEIGHTS_ENV, "XBENCH_WEIGHTS", OFFLINE_ENV)


class StaleIdentityError(EncoderError):
    """The encoder built differs from the identity cached for it (a change no stamped file showed)."""


def _build(spec: Any, protocol: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The encoder instance, its attributes checked and its protocol hook applied; and the hook's answer."""
    instance = load_encoder(spec)
    validate_attributes(instance)
    return instance, apply_protocol(instance, protocol)  # the encoder's own protocol hook, if it has one


def _spec_name(spec: Any) -> Any:
    """A named encoder as the identity cache keys it: a file by its absolute path (``:Name`` kept); a spec
    object (a dataclass) by its fields; ``None`` for anything else (no identity cache)."""
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return {type(spec).__name__: _plain({k: str(v) for k, v in dataclasses.asdict(spec).items()})}
    if not isinstance(spec, str | Path):
        return None
    text = str(spec)
    path = Path(text).expanduser()
    if path.exists():
        return str(path.resolve())
    base, sep, attr = text.partition(":")
    if Path(base).expanduser().is_file():
        return str(Path(base).expanduser().resolve()) + sep + attr
    return text


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


class EncoderHandle:
    """Identity and slug of the run's encoder, and the :class:`HarnessedEncoder` built on first use."""

    def __init__(
        self,
        spec: Any,
        identity: dict[str, Any],
        harness: HarnessOptions,
        protocol: str,
        instance: torch.nn.Module | None = None,
        cache: tuple[IdentityCache, dict[str, Any]] | None = None,
    ) -> None:
        self.spec, self.identity, self.harness, self.protocol = spec, identity, harness, protocol
        self.slug = encoder_slug(identity, encoder_fingerprint(identity))
        self._instance, self._cache = instance, cache
        self._enc: HarnessedEncoder | None = None
        self.built = instance is not None

    def get(self) -> HarnessedEncoder:
        """The harnessed encoder, built now if the identity came from the cache."""
        if self._enc is None:
            if self.spec is None:
                raise RuntimeError("the encoder was released after the embed stage")
            if self._instance is None:
                self._instance, behaviour = _build(self.spec, self.protocol)
                self.built = True
                fresh = encoder_identity(self._instance, protocol_identity(self.harness, behaviour))
                if self._cache is not None and _plain(fresh) != _plain(self.identity):
                    cache, key = self._cache
                    cache.forget(key)
                    raise StaleIdentityError(
                        f"encoder {self.spec}: it built into another identity than the one cached for it, although "
                        f"none of the files its building read changed; the entry was dropped: run again"
                    )
            self._enc = HarnessedEncoder(self._instance, self.harness)
        return self._enc

    def release(self) -> None:
        """Drop the encoder (the score stage trains from the cache alone)."""
        self.spec, self._instance, self._enc = None, None, None


def identity_key(spec: Any, harness: HarnessOptions, protocol: str) -> dict[str, Any] | None:
    """What the identity cache keys a named encoder by: its name, the harness options (device description
    and precision included), the protocol, the environment variables that change what it builds into, and
    the versions of xbench, torch and Python; ``None`` when ``spec`` is not a name or spec object."""
    name = _spec_name(spec)
    if name is None:
        return None
    return {
        "spec": name,
        "harness": harness.describe(),
        "protocol": protocol,
        "env": {name: os.environ.get(name) for name in IDENTITY_ENV},
        "xbench_version": __version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }


def open_encoder(
    encoder: Any, harness: HarnessOptions, protocol: str, cache_root: Path | None, use_cache: bool = True
) -> EncoderHandle:
    """The run's :class:`EncoderHandle`: for a named encoder and ``cache_root``, from the identity cache when
    it holds a valid entry (nothing built), else built (the files read meanwhile stamped into a new entry)."""
    key = None if isinstance(encoder, torch.nn.Module) else identity_key(encoder, harness, protocol)
    if key is None or cache_root is None or not use_cache:
        instance, behaviour = _build(encoder, protocol)
        identity = encoder_identity(instance, protocol_identity(harness, behaviour))
        return EncoderHandle(encoder, identity, harness, protocol, instance)
    cache = IdentityCache(cache_root)
    identity = cache.lookup(key)
    if identity is not None:
        return EncoderHandle(encoder, identity, harness, protocol, cache=(cache, key))
    with recording_reads() as read:
        instance, behaviour = _build(encoder, protocol)
    identity = encoder_identity(instance, protocol_identity(harness, behaviour))
    cache.store(key, identity, [*read, *source_files(type(instance))])
    return EncoderHandle(encoder, identity, harness, protocol, instance)
