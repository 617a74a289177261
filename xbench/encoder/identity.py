"""What makes two encoders "the same" for caching: class, source, weights, attributes, options.

Caches and results are keyed by :func:`encoder_fingerprint`, never by a class name alone: a changed
checkpoint, a changed encoder file, a changed local module it imports or changed harness options all give
a new key.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import torch

from xbench.encoder.local_imports import scan_imports


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # source files: small


def source_digests(cls: type) -> tuple[str, dict[str, str]]:
    """sha256 of the file defining ``cls`` and of every local module it imports (path relative to its folder).

    The local modules are those ``xbench package`` bundles (:func:`xbench.encoder.local_imports.scan_imports`):
    an edited helper module changes the key, a file the encoder does not import does not.
    ``("unknown", {})`` when the class has no source file.
    """
    try:
        path = inspect.getsourcefile(cls)
        if not path:
            return "unknown", {}
        own = _file_digest(Path(path))
    except (OSError, TypeError):
        return "unknown", {}
    scan = scan_imports(path)
    local = {p.relative_to(scan.root).as_posix(): _file_digest(p) for p in scan.local_files}
    return own, local


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
    source, local_sources = source_digests(cls)
    return {
        "class": f"{module}.{cls.__qualname__}",
        "source_sha256": source,
        "local_sources_sha256": local_sources,
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
