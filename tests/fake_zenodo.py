"""A local stand-in for zenodo.org's record API, for download tests.

``FakeZenodo`` runs a threaded ``http.server`` on 127.0.0.1 (random port) and serves

* ``GET /api/records/<id>``: record JSON in zenodo.org's form (``files`` list with ``key``, ``size``,
  ``checksum`` ``"md5:…"`` and ``links``); ``link_style`` picks ``links.self`` = download URL (the record
  endpoint's form), ``links.content`` (with ``links.self`` pointing at the file's metadata, as in the
  files listing) or no links at all;
* ``GET /api/records/<id>/files/<key>/content``: the bytes, honouring ``Range: bytes=N-``;
* ``GET /api/records/<id>/files/<key>``: the file's metadata JSON (never the bytes).

Switches (per file name): ``corrupt[name] = n`` flips one byte in the next ``n`` responses,
``cut_after[name] = (offset, n)`` closes the next ``n`` transfers once the file offset reaches ``offset``,
``ignore_range`` answers 200 with the whole file, ``rate_limit_once`` answers 429 to the first request
of each listed path. ``requests`` counts requests per path; ``ranges`` logs ``(path, Range header)``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote


class FakeZenodo:
    """A fake Zenodo server; use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self, link_style: str = "self") -> None:
        self.link_style = link_style
        self.records: dict[int, dict[str, bytes]] = {}
        self.corrupt: dict[str, int] = {}
        self.cut_after: dict[str, tuple[int, int]] = {}
        self.ignore_range = False
        self.rate_limit_once: set[str] = set()
        self.requests: Counter[str] = Counter()
        self.ranges: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up --------------------------------------------------------------------------------------
    def add_record(self, record_id: int, files: dict[str, bytes]) -> None:
        """Serve record ``record_id`` with these files (name → content)."""
        self.records[record_id] = dict(files)

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeZenodo:
        """Start serving in a daemon thread."""
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the server."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeZenodo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests -----------------------------------------------------------------------------
    def file_path(self, record_id: int, name: str) -> str:
        """The URL path the bytes of a file are served at."""
        return f"/api/records/{record_id}/files/{quote(name)}/content"

    def record_path(self, record_id: int) -> str:
        """The URL path of a record's JSON."""
        return f"/api/records/{record_id}"

    def file_requests(self) -> int:
        """How many requests asked for file bytes."""
        return sum(n for path, n in self.requests.items() if path.endswith("/content"))

    def record_json(self, record_id: int) -> dict[str, Any]:
        """The record JSON, as served."""
        entries = []
        for name, data in self.records[record_id].items():
            content = self.url + self.file_path(record_id, name)
            entry: dict[str, Any] = {
                "id": hashlib.md5(name.encode()).hexdigest(),
                "key": name,
                "size": len(data),
                "checksum": f"md5:{hashlib.md5(data).hexdigest()}",
            }
            if self.link_style == "self":
                entry["links"] = {"self": content}
            elif self.link_style == "content":
                entry["links"] = {"self": content.removesuffix("/content"), "content": content}
            entries.append(entry)
        return {
            "id": record_id,
            "recid": str(record_id),
            "metadata": {"title": f"record {record_id}"},
            "files": entries,
        }

    def _take(self, table: dict[str, Any], name: str) -> Any:
        """Consume one use of a per-file switch."""
        with self._lock:
            value = table.get(name)
            if value is None:
                return None
            if isinstance(value, tuple):
                offset, left = value
                table[name] = (offset, left - 1)
                if left - 1 <= 0:
                    del table[name]
                return offset
            table[name] = value - 1
            if value - 1 <= 0:
                del table[name]
            return value


_FILE = re.compile(r"^/api/records/(\d+)/files/([^/]+)(/content)?$")
_RECORD = re.compile(r"^/api/records/(\d+)$")


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeZenodo

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        fake = self.server_state
        path = self.path.split("?", 1)[0]
        with fake._lock:
            fake.requests[path] += 1
            first = fake.requests[path] == 1
            fake.ranges.append((path, self.headers.get("Range")))
        if path in fake.rate_limit_once and first:
            self._send(429, b'{"message": "rate limited"}', {"Retry-After": "0"})
            return
        match = _RECORD.match(path)
        if match and int(match.group(1)) in fake.records:
            body = json.dumps(fake.record_json(int(match.group(1)))).encode()
            self._send(200, body, {"Content-Type": "application/json"})
            return
        match = _FILE.match(path)
        if not match or int(match.group(1)) not in fake.records:
            self._send(404, b'{"status": 404}')
            return
        record_id, name = int(match.group(1)), unquote(match.group(2))
        data = fake.records[record_id].get(name)
        if data is None:
            self._send(404, b'{"status": 404}')
            return
        if not match.group(3):
            self._send(200, json.dumps({"key": name, "size": len(data)}).encode(), {"Content-Type": "application/json"})
            return
        self._serve_bytes(name, data)

    def _serve_bytes(self, name: str, data: bytes) -> None:
        fake = self.server_state
        if fake._take(fake.corrupt, name):
            flipped = bytearray(data)
            flipped[len(flipped) // 2] ^= 0xFF
            data = bytes(flipped)
        start = 0
        range_header = self.headers.get("Range")
        status, headers = 200, {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        if range_header and not fake.ignore_range:
            m = re.fullmatch(r"bytes=(\d+)-", range_header.strip())
            if m:
                start = int(m.group(1))
                if start >= len(data):
                    self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        cut = fake._take(fake.cut_after, name)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut is not None and start < cut < len(data):
            self.wfile.write(body[: cut - start])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)
