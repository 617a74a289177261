"""Safe extraction of downloaded ``.zip`` and compressed-tar archives.

Which files are archives is decided by name, then checked against the content:

* extracted: ``.zip``, ``.tar.gz``/``.tgz``, ``.tar.bz2``/``.tbz2``/``.tbz``, ``.tar.xz``/``.txz``;
* never extracted: a plain ``.tar``. X-ARES audio shards are uncompressed tar files read as WebDataset
  shards, and a Zenodo record holds either such shards directly or a zip of them, so a ``.tar`` is data.

A file named like an archive whose content is not one (a ``.zip`` that is no zip) is an error.

Every member is checked before anything is written: absolute paths, drive letters, ``..`` components,
symbolic and hard links, device files, FIFOs and sockets are refused with an :class:`UnsafeArchiveError`
naming the archive and the member. Members are written by xbench itself (never by ``extractall``), into a
temporary folder beside the target; only after every member has been written and checked are they moved
into the target. The archive is deleted afterwards unless ``keep_archive=True``.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

log = logging.getLogger(__name__)

ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
_DRIVE = re.compile(r"^[A-Za-z]:")
_COPY_CHUNK = 1 << 20
_READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)


class ArchiveError(ValueError):
    """An archive cannot be extracted (unreadable, truncated, or of an unexpected format)."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would escape the target folder or is not a plain file or folder."""

    def __init__(self, archive: str | Path, member: str, reason: str) -> None:
        self.archive = str(archive)
        self.member = member
        self.reason = reason
        super().__init__(f"unsafe archive {self.archive}: member {member!r} refused ({reason})")


def archive_kind(path: str | Path) -> str | None:
    """``"zip"`` or ``"tar"`` when ``path`` is named like an archive xbench extracts, else ``None``.

    A plain ``.tar`` is ``None``: it is a WebDataset shard, not an archive to unpack.
    """
    name = Path(path).name.lower()
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    return None


def is_archive(path: str | Path) -> bool:
    """Whether xbench extracts ``path`` after download (decided by name, see the module docstring)."""
    return archive_kind(path) is not None


@dataclass(frozen=True)
class _Member:
    rel: PurePosixPath
    is_dir: bool
    size: int
    open: Callable[[], IO[bytes]] | None


def _safe_relpath(archive: Path, name: str) -> PurePosixPath | None:
    """The member's path relative to the target, or ``None`` for the archive root itself."""
    if "\x00" in name:
        raise UnsafeArchiveError(archive, name, "NUL byte in the name")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE.match(posix):
        raise UnsafeArchiveError(archive, name, "absolute path")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(archive, name, "'..' path component")
    return PurePosixPath(*parts) if parts else None


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[_Member]:
    for info in zf.infolist():
        rel = _safe_relpath(archive, info.filename)
        ftype = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip stores no Unix mode
        if ftype == stat.S_IFLNK:
            raise UnsafeArchiveError(archive, info.filename, "symbolic link")
        if ftype not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(archive, info.filename, "device file, FIFO or socket")
        if rel is None:
            continue
        if info.is_dir():
            yield _Member(rel, True, 0, None)
        else:
            yield _Member(rel, False, info.file_size, lambda info=info: zf.open(info))


def _tar_members(archive: Path, tf: tarfile.TarFile) -> Iterator[_Member]:
    for info in tf.getmembers():
        if info.issym() or info.islnk():
            kind = "symbolic link" if info.issym() else "hard link"
            raise UnsafeArchiveError(archive, info.name, f"{kind} to {info.linkname!r}")
        if info.isdev():
            raise UnsafeArchiveError(archive, info.name, "device file or FIFO")
        if not (info.isfile() or info.isdir()):
            raise UnsafeArchiveError(archive, info.name, "not a plain file or folder")
        rel = _safe_relpath(archive, info.name)
        if rel is None:
            continue
        if info.isdir():
            yield _Member(rel, True, 0, None)
        else:

            def opener(info: tarfile.TarInfo = info) -> IO[bytes]:
                fh = tf.extractfile(info)
                if fh is None:  # pragma: no cover - isfile() members always have data
                    raise ArchiveError(f"{archive}: cannot read member {info.name!r}")
                return fh

            yield _Member(rel, False, info.size, opener)


def _write_members(archive: Path, members: list[_Member], dest: Path) -> None:
    root = dest.resolve()
    for m in members:
        out = dest.joinpath(*m.rel.parts)
        if root not in out.resolve().parents and out.resolve() != root:
            raise UnsafeArchiveError(archive, str(m.rel), "resolves outside the target folder")
        if m.is_dir:
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        assert m.open is not None
        written = 0
        with m.open() as src, out.open("wb") as dst:
            while chunk := src.read(_COPY_CHUNK):
                dst.write(chunk)
                written += len(chunk)
        if written != m.size:
            raise ArchiveError(f"{archive}: member {str(m.rel)!r} has {written} bytes, the archive says {m.size}")


def _move_into(archive: Path, src: Path, dst: Path) -> None:
    """Move the contents of ``src`` into ``dst``, merging folders; never follows a symlink in ``dst``."""
    for entry in sorted(src.iterdir()):
        out = dst / entry.name
        if entry.is_dir():
            if out.is_dir() and not out.is_symlink():
                _move_into(archive, entry, out)
                continue
            if out.is_symlink() or out.exists():
                out.unlink()
            os.replace(entry, out)
        else:
            if out.is_dir() and not out.is_symlink():
                raise ArchiveError(f"{archive}: member {entry.name!r} would replace the folder {out}")
            os.replace(entry, out)


def _open_checked(archive: Path, kind: str) -> zipfile.ZipFile | tarfile.TarFile:
    try:
        if kind == "zip":
            if not zipfile.is_zipfile(archive):
                raise ArchiveError(f"{archive} is named like a zip archive but is not one")
            return zipfile.ZipFile(archive)
        return tarfile.open(archive, mode="r:*")
    except _READ_ERRORS as exc:
        raise ArchiveError(f"cannot read archive {archive}: {exc}") from exc


def safe_extract(archive: str | Path, target: str | Path, *, keep_archive: bool = False) -> list[str]:
    """Extract ``archive`` into ``target`` safely; return the extracted file paths (relative, sorted).

    Raises :class:`UnsafeArchiveError` (naming archive and member) before writing anything when a member
    is unsafe, and :class:`ArchiveError` for unreadable or truncated archives; on any error ``target``
    is left untouched and the temporary folder is removed.
    """
    archive = Path(archive)
    target = Path(target)
    kind = archive_kind(archive)
    if kind is None:
        raise ArchiveError(f"{archive} is not an archive xbench extracts (.zip, .tar.gz, .tar.bz2, .tar.xz)")
    target.mkdir(parents=True, exist_ok=True)
    with _open_checked(archive, kind) as handle:
        try:
            if isinstance(handle, zipfile.ZipFile):
                members = list(_zip_members(archive, handle))
            else:
                members = list(_tar_members(archive, handle))
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
            try:
                _write_members(archive, members, tmp)
                _move_into(archive, tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        except _READ_ERRORS as exc:
            raise ArchiveError(f"cannot extract {archive}: {exc}") from exc
    files = sorted(str(m.rel) for m in members if not m.is_dir)
    log.info("extracted %d files from %s into %s", len(files), archive.name, target)
    if not keep_archive:
        archive.unlink()
    return files
