"""Crash-safe file writes: a temporary file in the same folder, fsync, then ``os.replace``.

A reader never sees a half-written file under the final name. The file gets the permissions a plain
``open(path, "w")`` would give (0o666 less the umask), not ``tempfile.mkstemp``'s 0o600.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process umask, read from ``/proc/self/status`` where possible (setting it to read it is racy)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
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
