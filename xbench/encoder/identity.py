"""What makes two encoders "the same" for caching: class, source, weights, attributes, options.

Caches and results are keyed by :func:`encoder_fingerprint`, never by a class name alone: a changed
checkpoint, a changed encoder file or changed harness options all give a new key.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from typing import Any

import torch


def _source_digest(obj: Any) -> str:
    try:
        path = inspect.getsourcefile(type(obj))
        if path:
            with open(path, "rb") as fh:
                return hashlib.sha256(fh.read()).hexdigest()
    except (OSError, TypeError):
        pass
    return "unknown"


def state_digest(module: torch.nn.Module) -> str:
    """sha256 over every parameter and persistent buffer: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def encoder_identity(encoder: torch.nn.Module, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-safe description of the encoder that produced an embedding."""
    cls = type(encoder)
    # a class loaded from a file lives in a module named after the file's path: keep it path-free
    module = "<file>" if cls.__module__.startswith("xbench_user_") else cls.__module__
    return {
        "class": f"{module}.{cls.__qualname__}",
        "source_sha256": _source_digest(encoder),
        "state_sha256": state_digest(encoder),
        "sampling_rate": int(encoder.sampling_rate),
        "output_dim": int(encoder.output_dim),
        "hop_size_in_ms": float(encoder.hop_size_in_ms),
        "options": options or {},
    }


def encoder_fingerprint(identity: dict[str, Any]) -> str:
    """sha256 (hex) of an :func:`encoder_identity` record."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def encoder_slug(encoder: torch.nn.Module, fingerprint: str) -> str:
    """A readable, unique folder name: ``<ClassName>-<first 16 hex of the fingerprint>``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", type(encoder).__name__)
    return f"{name}-{fingerprint[:16]}"
