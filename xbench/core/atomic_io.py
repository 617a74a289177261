"""Crash-safe and concurrency-safe file writes.

* A write goes to a temporary file beside the target, is fsynced, then renamed over the target
  (``os.replace``): a reader never sees a half-written file under the final name. The file gets the
  permissions a plain ``open(path, "w")`` would give (0o666 less the umask), not ``mkstemp``'s 0o600.
* Every temporary name is unique and names its writer: ``.<name>~<host>~<pid>~<random>.tmp``. Two
  processes (or two hosts sharing a file system) writing the same target never share a temporary file,
  and :func:`clean_orphans` can tell a file left by a killed writer (its pid is gone, or on another
  host it has not been touched for a while) from a live writer's, which it never removes.
* Files that belong together (a result and its predictions) are committed as a group by
  :func:`commit_group`: each is written under a temporary name, all are renamed into place, and a
  small marker carrying every file's sha256 is written last. :func:`group_committed` accepts the group
  only when the marker exists and every file still hashes to what it records, so a writer killed
  between two files leaves a group that reads as not done.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"
ORPHAN_AGE_S = 3600.0  # a temporary file of another host untouched this long is an orphan
GROUP_FORMAT = 1
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)~(?P<host>[A-Za-z0-9-]*)~(?P<pid>\d+)~(?P<rand>[0-9a-f]+)\.tmp$")
_CHUNK = 1 << 20

__all__ = [
    "ORPHAN_AGE_S",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_writer",
    "clean_orphans",
    "commit_group",
    "group_committed",
    "pid_alive",
    "process_start",
    "sha256_file",
    "temp_path",
    "this_host",
]


def this_host() -> str:
    """This machine's name as it appears in temporary names and claims (letters, digits and ``-``)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", platform.node() or "localhost")[:40]


def process_start(pid: int) -> int | None:
    """Start time of process ``pid`` (clock ticks since boot, from ``/proc``), or ``None`` where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22; the name in (...) may hold spaces
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` of this host runs; with ``start`` (see :func:`process_start`), a reused pid is dead."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    if start is not None:
        now = process_start(pid)
        return now is None or now == start
    return True


def temp_path(path: Path) -> Path:
    """A new unique temporary name beside ``path`` (see the module docstring); the file is not created."""
    path = Path(path)
    return path.with_name(f".{path.name}~{this_host()}~{os.getpid()}~{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create a unique temporary file beside ``path`` (mode 0o666 less the umask); return (fd, its path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = temp_path(path)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


@contextmanager
def atomic_writer(path: Path) -> Iterator[IO[bytes]]:
    """A binary file handle whose content replaces ``path`` atomically when the block ends without error."""
    path = Path(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temporary file and ``os.replace``."""
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_json(path: Path, obj: Any, indent: int = 2) -> None:
    """:func:`atomic_write_bytes` of JSON (sorted keys, UTF-8, trailing newline)."""
    text = json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: Path) -> str:
    """The sha256 of a file as lower-case hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def commit_group(marker: Path, finals: Sequence[Path]) -> Iterator[list[Path]]:
    """Commit files that belong together: yields one unique temporary path per final path, to write.

    When the block ends without error, each temporary file is hashed and renamed onto its final path,
    then ``marker`` (JSON: ``{"format", "files": {name: "sha256:<hex>"}}``, names relative to the
    marker's folder) is written last. The old marker is removed first, so a writer killed anywhere
    in between leaves a group :func:`group_committed` rejects. Temporary files never outlive the block.
    """
    marker, finals = Path(marker), [Path(f) for f in finals]
    for final in finals:
        if final.parent != marker.parent:
            raise ValueError(f"commit_group: {final} is not in the marker's folder {marker.parent}")
    marker.unlink(missing_ok=True)
    temps = []
    try:
        for final in finals:
            fd, tmp = _create_temp(final)
            os.close(fd)
            temps.append(tmp)
        yield list(temps)
        files = {}
        for final, tmp in zip(finals, temps, strict=True):
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
            files[final.name] = f"sha256:{sha256_file(tmp)}"
        for final, tmp in zip(finals, temps, strict=True):
            os.replace(tmp, final)
        atomic_write_json(marker, {"format": GROUP_FORMAT, "files": files})
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def group_committed(marker: Path) -> bool:
    """True when ``marker`` (see :func:`commit_group`) exists and every file it lists hashes as recorded."""
    marker = Path(marker)
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        files = data["files"]
        if data.get("format") != GROUP_FORMAT or not isinstance(files, dict) or not files:
            return False
        if not all(isinstance(name, str) and name and "/" not in name for name in files):
            return False
        return all(f"sha256:{sha256_file(marker.parent / name)}" == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _orphan(name: str, age_s: float, host: str, max_age_s: float) -> bool:
    match = _TEMP_NAME.match(name)
    if match is None:
        # written by an older xbench (mkstemp names, or compare's fixed ``.tmp.npz``): no owner to ask
        legacy = (name.startswith(".") and name.endswith(TEMP_SUFFIX)) or name.endswith(".tmp.npz")
        return legacy and age_s > max_age_s
    if match["host"] == host:
        return not pid_alive(int(match["pid"]))
    return age_s > max_age_s


def clean_orphans(folder: Path, max_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Delete temporary files in ``folder`` left by killed writers; return what was deleted.

    A temporary file of this host is an orphan when its writer's pid is no longer running (however
    new the file); one of another host (whose pids cannot be asked) when untouched for ``max_age_s``.
    A live writer's file on this host is never removed.
    """
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    host, now, removed = this_host(), time.time(), []
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if _orphan(entry.name, now - entry.stat(follow_symlinks=False).st_mtime, host, max_age_s):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except FileNotFoundError:  # its writer renamed or removed it meanwhile
            continue
    return removed
