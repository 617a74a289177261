"""Stage 0: fetch the Zenodo records of tasks, verified and resumable.

Each record lands in ``xbench.core.paths.task_audio_dir(task, root)`` (``<data root>/zenodo/<record id>/``);
a record shared by several tasks (LibriSpeech ASR and LibriSpeech-MF share 14716252) is fetched once.
Per record:

1. the record JSON is fetched (or read from the mirror) and cached as ``.zenodo-record.json``, so a
   later ``--offline`` check can list the files exactly;
2. checksums pinned by the task are compared with the record's before any file is fetched;
3. each file is downloaded to ``<name>.part`` (resumed with HTTP Range), checked for size and md5 and
   only then renamed into place; a file already in place is re-verified, not re-fetched;
4. ``.zip`` and compressed-tar archives are extracted safely (plain ``.tar`` shards are left as they
   are, see :mod:`xbench.data.safe_extract`);
5. the ``.complete`` marker is written - the last data step: a folder without it is "not downloaded",
   and a rerun re-verifies and resumes. It holds the record id, ``files`` (each record file's md5, as
   the record states it), ``extracted`` (archive -> its member paths) and ``members`` (each extracted
   file's md5, taken right after extraction from the verified archive);
6. extracted archives are then deleted unless ``keep_archives`` (a crash between 5 and 6 leaves an
   archive that the next run deletes).

One process at a time downloads a record: it holds the claim ``<record folder>/.download.claim``
(:mod:`xbench.core.claims`; a second process waits, then finds the record complete), so the resumable
``<name>.part`` files are never written by two processes.

``verify=True`` fetches nothing: it rechecks every file the marker lists (record files still in place
and extracted members) against the checksums it holds, so corruption after download is found
(status ``corrupt``); ``xbench run --verify-data`` refuses such data. A task without a Zenodo record
(private, or placed by hand: the offline suite, user declarations) is checked against its declaration's
``checksums`` instead (``{file name: "md5:<hex>" | "sha256:<hex>"}`` in its data folder); one with
neither keeps status ``private`` / ``local``, as there is nothing to check.

Private tasks are never downloaded. ``offline=True`` makes no network request: it reports which files
are missing and where they go. ``mirror=DIR`` serves records from ``DIR/<record id>/<file>`` (with an
optional ``DIR/<record id>/record.json``) with the same verification, and needs no network either.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from xbench import __version__
from xbench.core.atomic_io import atomic_write_json, clean_orphans, sha256_file
from xbench.core.claims import hold
from xbench.core.paths import task_audio_dir
from xbench.data.safe_extract import ArchiveError, is_archive, safe_extract
from xbench.data.zenodo import (
    IntegrityError,
    PinnedChecksumError,
    Record,
    RecordFile,
    ZenodoError,
    expected_md5,
    fetch_file,
    fetch_record,
    md5sum,
    normalize_md5,
    parse_record,
    record_api_url,
    verify_file,
)

log = logging.getLogger(__name__)

MARKER_NAME = ".complete"
CLAIM_NAME = ".download.claim"
RECORD_CACHE_NAME = ".zenodo-record.json"
MIRROR_RECORD_NAMES = ("record.json", RECORD_CACHE_NAME)
OK_STATUSES = frozenset({"downloaded", "present", "verified", "private", "local"})


class DataVerificationError(ValueError):
    """Data no longer matches the checksums its download marker recorded or its declaration pins (or was never
    downloaded)."""


class DownloadTask(Protocol):
    """What the downloader reads from a task (``xbench.taskspec.config.TaskConfig`` provides it)."""

    @property
    def name(self) -> str: ...

    @property
    def zenodo_id(self) -> int | str | None: ...

    @property
    def private(self) -> bool: ...

    @property
    def checksums(self) -> Mapping[str, str]: ...

    @property
    def data_dir(self) -> str | None: ...


@dataclass
class DownloadResult:
    """The outcome for one task.

    ``status``: ``downloaded`` (fetched and verified now), ``present`` (already complete, nothing done),
    ``missing`` (offline: files absent, listed in ``missing`` as target paths), ``incomplete`` (offline:
    files present but not yet verified), ``private`` / ``local`` (no record: shards are placed by hand
    in ``folder``), ``error`` (``error`` holds the exception); with ``verify``: ``verified`` (every file
    matches its marker's checksum, or for a task without a record its declaration's) or ``corrupt``
    (``corrupt`` and ``missing`` list what does not).
    """

    task: str
    status: str
    folder: Path
    record_id: int | None = None
    files: list[str] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    message: str = ""
    error: Exception | None = None
    corrupt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True unless files are missing or something failed."""
        return self.status in OK_STATUSES

    def line(self) -> str:
        """A human-readable summary (missing files one per line)."""
        status = "" if self.message.startswith(f"{self.status}:") else f"{self.status}: "
        text = f"{self.task}: {status}{self.message}"
        missing = [f"  missing {path}{_partial_note(path)}" for path in self.missing]
        return "\n".join([text, *(f"  corrupt {line}" for line in self.corrupt), *missing])


def _partial_note(path: Path) -> str:
    part = path.with_name(f"{path.name}.part")
    return f" (partial: {part.stat().st_size} bytes in {part.name})" if part.is_file() else ""


def read_marker(folder: str | Path, record_id: int | None = None) -> dict[str, Any] | None:
    """The ``.complete`` marker of a record folder, or ``None`` when absent, unreadable or for another record."""
    path = Path(folder) / MARKER_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return None
    if record_id is not None and data.get("record_id") != int(record_id):
        return None
    return data


def is_downloaded(task: DownloadTask, root: str | Path | None = None) -> bool:
    """Whether the task's Zenodo record is completely downloaded, verified and extracted."""
    if getattr(task, "private", False) or not getattr(task, "zenodo_id", None):
        return False
    return read_marker(task_audio_dir(task, root), int(task.zenodo_id)) is not None  # type: ignore[arg-type]


def _write_marker(folder: Path, data: Mapping[str, Any]) -> None:
    atomic_write_json(folder / MARKER_NAME, data, indent=1)


def _merged_pins(tasks: Sequence[DownloadTask], record_id: int) -> dict[str, str]:
    """The pinned md5s of all tasks sharing a record; two tasks pinning different md5s is an error."""
    pins: dict[str, str] = {}
    owner: dict[str, str] = {}
    for task in tasks:
        for name, checksum in (getattr(task, "checksums", None) or {}).items():
            md5 = normalize_md5(checksum)
            if name in pins and pins[name] != md5:
                raise PinnedChecksumError(
                    f"record {record_id} file {name!r}: task {owner[name]} pins md5:{pins[name]}, "
                    f"task {task.name} pins md5:{md5}"
                )
            pins[name] = md5
            owner[name] = task.name
    return pins


def _check_pins(record: Record, pins: Mapping[str, str]) -> dict[str, str | None]:
    """Expected md5 per file; pinned files the record lacks and pin/record disagreements raise."""
    names = set(record.names())
    absent = sorted(set(pins) - names)
    if absent:
        raise PinnedChecksumError(
            f"record {record.record_id}: pinned file(s) {', '.join(map(repr, absent))} not in the record "
            f"(it has {', '.join(sorted(names))})"
        )
    return {f.name: expected_md5(f, pins.get(f.name), record.record_id) for f in record.files}


def _mirror_record(mirror: Path, record_id: int, pins: Mapping[str, str]) -> Record:
    """A record served from ``mirror/<id>/``: from its ``record.json`` if there, else the folder listing."""
    folder = mirror / str(record_id)
    if not folder.is_dir():
        raise ZenodoError(f"mirror {mirror} has no folder {record_id}/ for record {record_id}")
    for json_name in MIRROR_RECORD_NAMES:
        meta = folder / json_name
        if meta.is_file():
            try:
                raw = json.loads(meta.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise ZenodoError(f"mirror record metadata {meta} is not JSON") from exc
            record = parse_record(raw, record_id)
            files = [RecordFile(f.name, f.size, f.checksum, None, folder / f.name) for f in record.files]
            return Record(record_id, files, record.raw)
    listed = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name not in MIRROR_RECORD_NAMES and p.suffix != ".part"
    )
    if not listed:
        raise ZenodoError(f"mirror folder {folder} holds no files")
    files = [
        RecordFile(p.name, p.stat().st_size, f"md5:{pins[p.name]}" if p.name in pins else None, None, p) for p in listed
    ]
    return Record(record_id, files, None)


def _offline_status(record_id: int, folder: Path, pins: Mapping[str, str]) -> tuple[str, list[str], list[Path], str]:
    """Status without any network: complete, or which files are missing (from cached metadata or pins)."""
    marker = read_marker(folder, record_id)
    if marker is not None:
        return "present", sorted(marker["files"]), [], f"record {record_id} complete in {folder}"
    names: list[str] = []
    source = ""
    cache = folder / RECORD_CACHE_NAME
    if cache.is_file():
        try:
            names = parse_record(json.loads(cache.read_text(encoding="utf-8")), record_id).names()
            source = "cached record metadata"
        except (ValueError, ZenodoError) as exc:
            log.warning("ignoring unreadable %s: %s", cache, exc)
    if not names and pins:
        names, source = sorted(pins), "pinned checksums"
    if not names:
        return (
            "missing",
            [],
            [],
            f"record {record_id} metadata not cached (and no pinned checksums), so its files cannot be listed "
            f"offline; they go to {folder}. Run `xbench download` online or use --mirror DIR.",
        )
    missing = [folder / name for name in names if not (folder / name).is_file()]
    if missing:
        return (
            "missing",
            names,
            missing,
            f"{len(missing)} of {len(names)} files of record {record_id} missing (listed from {source}); "
            f"they go to {folder}",
        )
    return (
        "incomplete",
        names,
        [],
        f"all {len(names)} files of record {record_id} are in {folder} but not verified/extracted yet: "
        "run `xbench download` (nothing is re-fetched)",
    )


def _verify_record(record_id: int, folder: Path) -> tuple[str, list[str], list[Path], list[str], str]:
    """Recheck a downloaded record against its marker: (status, files, missing, corrupt lines, message)."""
    marker = read_marker(folder, record_id)
    if marker is None:
        return "missing", [], [], [], f"record {record_id} is not downloaded in {folder} (no {MARKER_NAME} marker)"
    extracted = marker.get("extracted") or {}
    expected = {
        name: checksum
        for name, checksum in marker["files"].items()
        if name not in extracted or (folder / name).exists()  # an archive deleted after extraction: its members
    }
    members = marker.get("members")
    note = ""
    if members is None and extracted:
        note = " (files extracted from archives carry no checksums in this older marker; download again to add them)"
    expected.update(members or {})
    return _recheck(
        expected,
        folder,
        source="recorded at download",
        prefix=f"record {record_id}: ",
        changed=f"checked since download in {folder}; delete {folder / MARKER_NAME} and run `xbench download` again",
        verified=f"in {folder}{note}",
    )


_DIGESTS = {"md5": md5sum, "sha256": sha256_file}


def _recheck(
    expected: Mapping[str, str],
    folder: Path,
    digests: dict[tuple[Path, str], str] | None = None,
    *,
    source: str,
    prefix: str,
    changed: str,
    verified: str,
) -> tuple[str, list[str], list[Path], list[str], str]:
    """Recheck files against checksums: (status ``verified`` or ``corrupt``, files, missing, corrupt lines,
    message).

    ``expected``: path relative to ``folder`` -> ``"md5:<hex>"`` or ``"sha256:<hex>"`` (bare hex: md5).
    A corrupt line reads ``<path>: <algo>:<actual>, <source> <algo>:<expected>``; the message
    ``<prefix><n> changed and <n> missing of the <n> files <changed>`` or ``<prefix><n> file(s) verified
    <verified>``. ``digests`` memoises digests across calls (tasks sharing a folder).
    """
    digests = {} if digests is None else digests
    missing: list[Path] = []
    corrupt: list[str] = []
    for rel, checksum in sorted(expected.items()):
        algo, sep, want = checksum.strip().partition(":")
        algo, want = (algo.lower(), want.lower()) if sep else ("md5", algo.lower())
        if algo not in _DIGESTS:
            raise ValueError(f"checksum {checksum!r} of {rel!r}: expected 'md5:<hex>' or 'sha256:<hex>'")
        path = folder / rel
        if not path.is_file():
            missing.append(path)
            continue
        key = (path.resolve(), algo)
        if key not in digests:
            digests[key] = _DIGESTS[algo](path)
        if digests[key] != want:
            corrupt.append(f"{path}: {algo}:{digests[key]}, {source} {algo}:{want}")
    if missing or corrupt:
        counts = f"{len(corrupt)} changed and {len(missing)} missing of the {len(expected)} files"
        return "corrupt", sorted(expected), missing, corrupt, f"{prefix}{counts} {changed}"
    return "verified", sorted(expected), [], [], f"{prefix}{len(expected)} file(s) verified {verified}"


def _download_record(
    record_id: int,
    folder: Path,
    pins: Mapping[str, str],
    *,
    base_url: str | None,
    mirror: Path | None,
    keep_archives: bool,
    retries: int,
    backoff: float,
    timeout: float,
    progress: bool | None,
) -> tuple[str, list[str], str]:
    """Fetch, verify and extract one record into ``folder`` (the caller holds its claim); return (status,
    file names, message)."""
    marker = read_marker(folder, record_id)
    if marker is not None:
        if not keep_archives:
            for name in marker.get("extracted", {}):
                (folder / name).unlink(missing_ok=True)  # left over by a crash after the marker
        return "present", sorted(marker["files"]), f"record {record_id} already complete in {folder}"
    folder.mkdir(parents=True, exist_ok=True)
    clean_orphans(folder)
    for stale in folder.parent.glob(f".{folder.name}.extract-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by an extraction that was killed
    if mirror is not None:
        record = _mirror_record(mirror, record_id, pins)
        source = str(mirror / str(record_id))
    else:
        record = fetch_record(record_id, base_url, retries=retries, backoff=backoff, timeout=timeout)
        source = record_api_url(record_id, base_url)
    if record.raw is not None:
        atomic_write_json(folder / RECORD_CACHE_NAME, record.raw, indent=1)
    expected = _check_pins(record, pins)
    md5s: dict[str, str] = {}
    fetched = 0
    for file in record.files:
        final = folder / file.name
        if final.is_file():
            try:
                md5s[file.name] = verify_file(final, file.name, file.size, expected[file.name]).md5
                continue
            except IntegrityError as exc:
                log.warning("%s is in place but does not verify (%s); fetching it again", final, exc)
                final.unlink()
        got = fetch_file(
            file,
            folder,
            md5=expected[file.name],
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            progress=progress,
        )
        md5s[file.name] = got.md5
        fetched += 1
    extracted = {name: safe_extract(folder / name, folder, keep_archive=True) for name in md5s if is_archive(name)}
    _write_marker(
        folder,
        {
            "record_id": record_id,
            "files": {name: f"md5:{md5}" for name, md5 in md5s.items()},
            "extracted": extracted,
            "members": {rel: f"md5:{md5sum(folder / rel)}" for rels in extracted.values() for rel in rels},
            "source": source,
            "completed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "xbench": __version__,
        },
    )
    if not keep_archives:
        for name in extracted:
            (folder / name).unlink(missing_ok=True)
    extra = f", {len(extracted)} archive(s) extracted" if extracted else ""
    message = f"record {record_id}: {len(md5s)} file(s) verified, {fetched} fetched from {source}{extra}; in {folder}"
    return "downloaded", sorted(md5s), message


def download_tasks(
    tasks: Sequence[DownloadTask],
    root: str | Path | None = None,
    offline: bool = False,
    mirror: str | Path | None = None,
    keep_archives: bool = False,
    base_url: str | None = None,
    *,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool | None = None,
    verify: bool = False,
) -> list[DownloadResult]:
    """Download the Zenodo records of ``tasks``; one :class:`DownloadResult` per task, in order.

    ``root``: data root (see :mod:`xbench.core.paths`). ``offline``: no network; with ``mirror`` the mirror is
    still copied, without it the call only reports what is missing. ``mirror``: folder laid out as
    ``<record id>/<file>``. ``base_url``: Zenodo server (default ``$XBENCH_ZENODO_URL`` or zenodo.org).
    ``retries``/``backoff``: retries of transient HTTP errors, waiting ``backoff * 2**n`` s.
    ``progress``: tqdm bars (``None``: only on a terminal). ``verify``: fetch nothing, recheck every
    downloaded file against its marker's checksums (see the module docstring). Failures are reported
    per record as status ``error``, never raised.
    """
    results: list[DownloadResult | None] = [None] * len(tasks)
    groups: dict[tuple[int, Path], list[int]] = {}
    digests: dict[tuple[Path, str], str] = {}
    for i, task in enumerate(tasks):
        folder = task_audio_dir(task, root)
        declared = getattr(task, "checksums", None) or {}
        if verify and declared and (getattr(task, "private", False) or not getattr(task, "zenodo_id", None)):
            results[i] = _declared_result(task.name, declared, folder, digests)
        elif getattr(task, "private", False):
            results[i] = DownloadResult(task.name, "private", folder, message=_manual_note("private", folder))
        elif not getattr(task, "zenodo_id", None):
            results[i] = DownloadResult(task.name, "local", folder, message=_manual_note("no Zenodo record", folder))
        else:
            groups.setdefault((int(task.zenodo_id), folder.resolve()), []).append(i)  # type: ignore[arg-type]
    mirror_path = Path(mirror).expanduser() if mirror is not None else None
    for (record_id, _), indices in groups.items():
        members = [tasks[i] for i in indices]
        folder = task_audio_dir(members[0], root)
        files: list[str] = []
        missing: list[Path] = []
        corrupt: list[str] = []
        error: Exception | None = None
        try:
            pins = _merged_pins(members, record_id)
            if verify:
                status, files, missing, corrupt, message = _verify_record(record_id, folder)
            elif offline and mirror_path is None:
                status, files, missing, message = _offline_status(record_id, folder, pins)
            else:
                with hold(folder / CLAIM_NAME, what=f"download of record {record_id}"):
                    status, files, message = _download_record(
                        record_id,
                        folder,
                        pins,
                        base_url=base_url,
                        mirror=mirror_path,
                        keep_archives=keep_archives,
                        retries=retries,
                        backoff=backoff,
                        timeout=timeout,
                        progress=progress,
                    )
        except (ZenodoError, ArchiveError, ValueError, OSError) as exc:
            status, message, error = "error", f"record {record_id}: {exc}", exc
            log.debug("%s", message, exc_info=True)
        for k, i in enumerate(indices):
            note = f" (record shared with {members[0].name})" if k else ""
            results[i] = DownloadResult(
                tasks[i].name, status, folder, record_id, list(files), list(missing), message + note, error, corrupt
            )
    return [r for r in results if r is not None]


def _declared_result(
    name: str, checksums: Mapping[str, str], folder: Path, digests: dict[tuple[Path, str], str]
) -> DownloadResult:
    """The ``verify`` result of a task without a Zenodo record, from its declaration's checksums."""
    try:
        status, files, missing, corrupt, message = _recheck(
            checksums,
            folder,
            digests,
            source="declared",
            prefix="",
            changed=f"the declaration's checksums name in {folder}",
            verified=f"against the declaration's checksums in {folder}",
        )
    except (ValueError, OSError) as exc:
        log.debug("task %s: %s", name, exc, exc_info=True)
        return DownloadResult(name, "error", folder, message=str(exc), error=exc)
    return DownloadResult(name, status, folder, None, files, missing, message, None, corrupt)


def _manual_note(kind: str, folder: Path) -> str:
    shards = len(list(folder.glob("*.tar"))) if folder.is_dir() else 0
    return f"{kind}: place the shards in {folder}" + (f" ({shards} .tar shards there now)" if shards else "")


__all__ = [
    "CLAIM_NAME",
    "DataVerificationError",
    "MARKER_NAME",
    "RECORD_CACHE_NAME",
    "DownloadResult",
    "DownloadTask",
    "download_tasks",
    "is_downloaded",
    "read_marker",
]
