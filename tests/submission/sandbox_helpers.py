"""Shared by the sandbox tests: whether bwrap runs here, a submission zip of one encoder file, a snapshot of a
folder tree, a loopback TCP server."""

import json
import os
import socket
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from xbench.submission.manifest import FORMAT, file_entries
from xbench.submission.sandbox import Sandbox, SandboxUnavailable

from conftest import oracles_required


def require_bwrap() -> None:
    """Skip the calling test when bubblewrap cannot run here; fail under ``CI=true`` (CI installs it)."""
    try:
        Sandbox().check()
    except SandboxUnavailable as exc:
        if oracles_required():
            pytest.fail(f"CI must run the sandbox tests: {exc}")
        pytest.skip(str(exc))


def entry_zip(folder: Path, source: str, cls: str, meta_edit=None) -> Path:
    """A submission zip (under a new name in ``folder``) of the encoder file ``source`` defining class ``cls``.

    ``meta_edit(meta)`` may change its metadata before it is written (the checksums are taken before).
    """
    files = {"enc.py": source.encode(), "requirements.txt": b"\n"}
    meta = {
        "format": FORMAT,
        "name": "sealed",
        "encoder": {"file": "enc.py", "class": cls},
        "weights": [],
        "download": None,
        "requirements": [],
        "files": file_entries({}, files),
    }
    if meta_edit:
        meta_edit(meta)
    out = folder / f"entry-{uuid.uuid4().hex[:8]}.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("metadata.json", json.dumps(meta))
    return out


def snapshot(root: Path) -> dict[str, tuple[int, float] | None]:
    """Every path under ``root``: files with their size and modification time, folders with None."""
    found: dict[str, tuple[int, float] | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            found[str((Path(dirpath) / name).relative_to(root))] = None
        for name in filenames:
            st = (Path(dirpath) / name).lstat()
            found[str((Path(dirpath) / name).relative_to(root))] = (st.st_size, st.st_mtime)
    return found


@contextmanager
def tcp_listener() -> Iterator[tuple[int, list[socket.socket]]]:
    """(port, accepted connections) of a TCP server on the host's loopback, for the duration of the block."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        time.sleep(0.3)  # a connection made just before the block ended is still counted
        stop.set()
        thread.join()
        server.close()
