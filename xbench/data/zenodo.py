"""A small Zenodo client: record metadata, resumable verified file transfer.

Why not ``zenodo-get`` (a dependency, 3.x): its record API URL is hard-coded to zenodo.org (no base URL
to point at a local server or another Invenio instance), it restarts partial files instead of resuming
them with HTTP ``Range``, and it cannot compare against checksums pinned by the task. It is used here
only as the reference for the record JSON fields it reads: ``key`` (or legacy ``filename``), ``size``
(or ``filesize``), ``checksum`` (``"md5:<hex>"``) and ``links.self``.

Record JSON (``GET {base}/api/records/{id}``): ``files`` is a list of entries (or, in the Invenio-RDM
form, ``{"entries": {...}}``). The download URL is ``links.content`` where present (in the RDM
files listing, ``links.self`` is then the file's metadata), else ``links.download``, else
``links.self`` (zenodo.org's record endpoint, which zenodo-get reads), else
``{base}/api/records/{id}/files/{key}/content``.

Transfers go to ``<name>.part`` (a fixed name, so a later run resumes it; the caller makes sure only one
process fetches a record at a time, see :mod:`xbench.data.download`) and continue a partial file with
``Range: bytes=<n>-``; a server that answers ``200`` instead of ``206`` restarts the file cleanly.
Size and md5 are checked against the record (and the task's pinned checksum); only a verified file
is renamed to its final name.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from xbench import __version__

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://zenodo.org"
BASE_URL_ENV = "XBENCH_ZENODO_URL"
USER_AGENT = f"xbench/{__version__} (X-ARES data download)"
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_WAIT_S = 300.0
_CHUNK = 1 << 20
_T = TypeVar("_T")


class ZenodoError(RuntimeError):
    """A Zenodo record or file could not be fetched."""


class RateLimitError(ZenodoError):
    """Zenodo kept answering HTTP 429 (too many requests) after all retries."""


class PinnedChecksumError(ZenodoError):
    """A checksum pinned by a task disagrees with the record, or names a file the record lacks."""


class IntegrityError(ZenodoError):
    """A downloaded file has the wrong size or md5; it has been deleted."""

    def __init__(self, name: str, what: str, expected: str, actual: str) -> None:
        self.name = name
        self.what = what
        self.expected = expected
        self.actual = actual
        super().__init__(f"corrupted download {name!r}: expected {what} {expected}, got {actual} (file deleted)")


class _Transient(Exception):
    """A failure worth retrying (network error, 5xx, 429, cut-off transfer)."""

    def __init__(self, message: str, retry_after: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


@dataclass(frozen=True)
class RecordFile:
    """One file of a record: where it comes from and what it must hash to."""

    name: str
    size: int | None
    checksum: str | None
    url: str | None = None
    source: Path | None = None

    @property
    def md5(self) -> str | None:
        """The record's md5 as lower-case hex, or ``None``."""
        return normalize_md5(self.checksum) if self.checksum else None


@dataclass
class Record:
    """A Zenodo record: its id, its files, and the JSON it was read from (``None`` if listed from disk)."""

    record_id: int
    files: list[RecordFile]
    raw: dict[str, Any] | None = None

    def names(self) -> list[str]:
        """The file names, in record order."""
        return [f.name for f in self.files]


@dataclass(frozen=True)
class FetchedFile:
    """A verified file in its final place."""

    path: Path
    size: int
    md5: str


def resolve_base_url(base_url: str | None = None) -> str:
    """``base_url``, else ``$XBENCH_ZENODO_URL``, else ``https://zenodo.org`` (no trailing slash)."""
    url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return url.rstrip("/")


def record_api_url(record_id: int | str, base_url: str | None = None) -> str:
    """``{base}/api/records/{record_id}``."""
    return f"{resolve_base_url(base_url)}/api/records/{int(record_id)}"


def normalize_md5(checksum: str) -> str:
    """``"md5:<hex>"`` or bare hex → lower-case hex; other algorithms raise ``ValueError``."""
    algo, sep, digest = checksum.strip().partition(":")
    if not sep:
        algo, digest = "md5", algo
    digest = digest.lower()
    if algo.lower() != "md5" or not re.fullmatch(r"[0-9a-f]{32}", digest):
        raise ValueError(f"unsupported checksum {checksum!r}: expected 'md5:<32 hex digits>'")
    return digest


def check_file_name(name: str) -> str:
    """Refuse record file names that are not a plain name in one folder (a record cannot write elsewhere)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ZenodoError(f"refusing record file name {name!r}: not a plain file name")
    return name


def _files_list(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    files = data.get("files")
    if isinstance(files, Mapping):
        files = files.get("entries", [])
        if isinstance(files, Mapping):
            files = list(files.values())
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, Mapping)]


def parse_record(data: Mapping[str, Any], record_id: int | str, base_url: str | None = None) -> Record:
    """Read a record JSON into a :class:`Record`; relative links are resolved against the base URL."""
    base = resolve_base_url(base_url)
    out: list[RecordFile] = []
    for entry in _files_list(data):
        name = entry.get("key") or entry.get("filename")
        if not isinstance(name, str):
            raise ZenodoError(f"record {record_id}: a file entry has no 'key': {dict(entry)!r}")
        check_file_name(name)
        size = entry.get("size", entry.get("filesize"))
        checksum = entry.get("checksum")
        links = entry.get("links") if isinstance(entry.get("links"), Mapping) else {}
        url = links.get("content") or links.get("download") or links.get("self")
        if not url:
            quoted = urllib.parse.quote(name)
            url = f"{base}/api/records/{int(record_id)}/files/{quoted}/content"
        out.append(
            RecordFile(
                name=name,
                size=int(size) if size is not None else None,
                checksum=str(checksum) if checksum else None,
                url=urllib.parse.urljoin(base + "/", str(url)),
            )
        )
    if not out:
        raise ZenodoError(f"record {record_id} lists no files")
    return Record(int(record_id), out, dict(data))


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _http_error(exc: urllib.error.HTTPError, url: str, what: str) -> Exception:
    """Map an HTTP error to a retryable :class:`_Transient` or a final :class:`ZenodoError`."""
    if exc.code == 429:
        return _Transient(f"HTTP 429 too many requests for {url}", _retry_after(exc.headers), rate_limited=True)
    if exc.code in TRANSIENT_STATUS:
        return _Transient(f"HTTP {exc.code} {exc.reason} for {url}", _retry_after(exc.headers))
    if exc.code == 404:
        return ZenodoError(f"{what} not found (HTTP 404): {url}")
    if exc.code in (401, 403):
        return ZenodoError(f"{what}: access denied (HTTP {exc.code}) at {url}; is the record restricted?")
    return ZenodoError(f"{what}: HTTP {exc.code} {exc.reason} from {url}")


_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout)


def _network_error(exc: BaseException, url: str) -> Exception:
    """A failed name lookup ends at once (no network); other network errors are retried."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, socket.gaierror):
        host = urllib.parse.urlsplit(url).hostname
        return ZenodoError(
            f"cannot resolve {host} ({exc.reason}): no network? Use --offline to list what is missing, "
            f"--mirror DIR to copy records from a local folder, or ${BASE_URL_ENV} for another server"
        )
    return _Transient(f"{type(exc).__name__}: {exc}")


def _open(url: str, timeout: float, headers: Mapping[str, str] | None = None) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    return urllib.request.urlopen(request, timeout=timeout)


def with_retries(action: Callable[[], _T], what: str, retries: int = 4, backoff: float = 1.0) -> _T:
    """Run ``action``, retrying transient failures ``retries`` times with exponential backoff.

    The wait is ``backoff * 2**attempt`` seconds, or the server's ``Retry-After`` (capped at 5 minutes).
    Repeated HTTP 429 ends in :class:`RateLimitError`; other exhausted retries in :class:`ZenodoError`.
    """
    attempt = 0
    while True:
        try:
            return action()
        except _Transient as exc:
            if attempt >= retries:
                if exc.rate_limited:
                    raise RateLimitError(
                        f"Zenodo is rate-limiting this machine (HTTP 429 Too Many Requests) while fetching {what}, "
                        f"still after {retries} retries. Wait a few minutes and run the download again (verified "
                        "files are kept and partial ones resume), or copy the files here and use --mirror DIR."
                    ) from exc
                raise ZenodoError(f"giving up on {what} after {retries + 1} attempts: {exc}") from exc
            delay = exc.retry_after if exc.retry_after is not None else backoff * 2**attempt
            delay = min(delay, MAX_WAIT_S)
            kind = "rate-limited (HTTP 429)" if exc.rate_limited else "transient error"
            log.warning("%s on %s: %s; retry %d/%d in %.1f s", kind, what, exc, attempt + 1, retries, delay)
            time.sleep(delay)
            attempt += 1


def fetch_record_json(
    record_id: int | str, base_url: str | None = None, *, retries: int = 4, backoff: float = 1.0, timeout: float = 60.0
) -> dict[str, Any]:
    """``GET {base}/api/records/{id}`` as a dict, with retries."""
    url = record_api_url(record_id, base_url)

    def attempt() -> dict[str, Any]:
        try:
            with _open(url, timeout, {"Accept": "application/json"}) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, url, f"Zenodo record {record_id}") from exc
        except _NETWORK_ERRORS as exc:
            raise _network_error(exc, url) from exc
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ZenodoError(f"record {record_id}: the answer from {url} is not JSON") from exc
        if not isinstance(data, dict):
            raise ZenodoError(f"record {record_id}: the answer from {url} is not a JSON object")
        return data

    return with_retries(attempt, f"record {record_id} metadata", retries, backoff)


def fetch_record(
    record_id: int | str, base_url: str | None = None, *, retries: int = 4, backoff: float = 1.0, timeout: float = 60.0
) -> Record:
    """Fetch and parse record metadata; :attr:`Record.raw` holds the JSON (for caching)."""
    data = fetch_record_json(record_id, base_url, retries=retries, backoff=backoff, timeout=timeout)
    return parse_record(data, record_id, base_url)


def md5sum(path: str | Path) -> str:
    """The md5 of a file as lower-case hex."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def expected_md5(file: RecordFile, pinned: str | None, record_id: int | str | None = None) -> str | None:
    """The md5 a file must have: the record's, checked against the task's pin; a disagreement is an error."""
    pin = normalize_md5(pinned) if pinned else None
    if pin and file.md5 and pin != file.md5:
        where = f"record {record_id} " if record_id is not None else ""
        raise PinnedChecksumError(
            f"{where}file {file.name!r}: the task pins md5:{pin} but the record says md5:{file.md5} "
            "(the record was changed, or the pinned checksum is wrong)"
        )
    return pin or file.md5


def verify_file(path: Path, name: str, size: int | None, md5: str | None) -> FetchedFile:
    """Check a file's size and md5; raise :class:`IntegrityError` (the file is left for the caller)."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise IntegrityError(name, "size", f"{size} bytes", f"{actual_size} bytes")
    actual = md5sum(path)
    if md5 is not None and actual != md5:
        raise IntegrityError(name, "md5", md5, actual)
    return FetchedFile(path, actual_size, actual)


def _progress(name: str, total: int | None, initial: int, progress: bool | None) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
        disable=None if progress is None else not progress,
    )


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-", value or "")
    return int(match.group(1)) if match else None


def _http_transfer(file: RecordFile, part: Path, timeout: float, progress: bool | None) -> None:
    """One attempt: continue ``part`` from its current length (or start it); raise ``_Transient`` if cut off."""
    assert file.url is not None
    offset = part.stat().st_size if part.exists() else 0
    if file.size is not None and offset > file.size:
        log.info("%s: partial file is longer than the record's size; restarting", file.name)
        part.unlink()
        offset = 0
    if file.size is not None and offset == file.size and offset > 0:
        return  # complete already; verification decides
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        resp = _open(file.url, timeout, headers)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            if file.size is None:
                return  # the partial file is already the whole file; verification decides
            part.unlink()
            raise _Transient(f"server refused to resume {file.name} at byte {offset}; restarting") from exc
        raise _http_error(exc, file.url, f"file {file.name!r}") from exc
    except _NETWORK_ERRORS as exc:
        raise _network_error(exc, file.url) from exc
    with resp:
        if offset and resp.status == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Transient(f"server resumed {file.name} at byte {start}, not {offset}; restarting")
            mode = "ab"
            log.info("%s: resuming at byte %d", file.name, offset)
        else:
            if offset:
                log.info("%s: server ignored the Range request; restarting from byte 0", file.name)
            offset, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = offset + expected if expected is not None else file.size
        received = 0
        with part.open(mode) as fh, _progress(file.name, total, offset, progress) as bar:
            try:
                while chunk := resp.read(_CHUNK):
                    fh.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except _NETWORK_ERRORS as exc:
                raise _Transient(f"transfer of {file.name} broke at byte {offset + received}: {exc}") from exc
    if expected is not None and received < expected:
        raise _Transient(f"transfer of {file.name} cut off at byte {offset + received} of {total}")


def _local_transfer(file: RecordFile, part: Path, progress: bool | None) -> None:
    """Copy a mirror file into ``part``, continuing a partial copy."""
    assert file.source is not None
    if not file.source.is_file():
        raise ZenodoError(f"mirror file missing: {file.source}")
    total = file.source.stat().st_size
    offset = part.stat().st_size if part.exists() else 0
    if offset > total:
        part.unlink()
        offset = 0
    with file.source.open("rb") as src, part.open("ab") as dst, _progress(file.name, total, offset, progress) as bar:
        src.seek(offset)
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
            bar.update(len(chunk))


def fetch_file(
    file: RecordFile,
    dest_dir: str | Path,
    *,
    md5: str | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool | None = None,
    retry_corrupt: bool = True,
) -> FetchedFile:
    """Download (or copy from a mirror) one record file into ``dest_dir`` and verify it.

    ``md5`` is the expected hex digest (see :func:`expected_md5`); ``None`` uses the record's. The data
    goes to ``<name>.part`` (continued if present) and is renamed to ``<name>`` only once size and md5
    match. A corrupted file is deleted and fetched once more when ``retry_corrupt``; a second failure
    raises :class:`IntegrityError` naming the file with the expected and actual md5.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    name = check_file_name(file.name)
    part = dest / f"{name}.part"
    want = md5 if md5 is not None else file.md5
    attempts = 2 if retry_corrupt else 1
    for attempt in range(attempts):
        if file.source is not None:
            _local_transfer(file, part, progress)
        elif file.url is not None:
            with_retries(lambda: _http_transfer(file, part, timeout, progress), f"file {name!r}", retries, backoff)
        else:
            raise ZenodoError(f"file {name!r} has neither a URL nor a mirror source")
        try:
            verified = verify_file(part, name, file.size, want)
        except IntegrityError as exc:
            part.unlink(missing_ok=True)
            if attempt + 1 >= attempts:
                raise
            log.warning("%s; fetching it again", exc)
            continue
        final = dest / name
        os.replace(part, final)
        return FetchedFile(final, verified.size, verified.md5)
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "FetchedFile",
    "IntegrityError",
    "PinnedChecksumError",
    "RateLimitError",
    "Record",
    "RecordFile",
    "ZenodoError",
    "check_file_name",
    "expected_md5",
    "fetch_file",
    "fetch_record",
    "fetch_record_json",
    "md5sum",
    "normalize_md5",
    "parse_record",
    "record_api_url",
    "resolve_base_url",
    "verify_file",
    "with_retries",
]
