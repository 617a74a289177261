"""Crash-safe file writes: a temporary file in the same folder, fsync, then ``os.replace``.

A reader never sees a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any, indent: int = 2) -> None:
    """:func:`atomic_write_bytes` of JSON (sorted keys, UTF-8, trailing newline)."""
    text = json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
