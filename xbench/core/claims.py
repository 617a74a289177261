"""Claims: one lock file per piece of work, so processes on any hosts sharing a file system split it.

A claim is a file created atomically with ``O_CREAT | O_EXCL`` (atomic on local file systems and
NFSv3 or later). It holds JSON: ``owner`` (a random token), ``host``, ``pid``, ``pid_start`` (the
process start time, so a reused pid is not mistaken for the owner), ``what`` (a label for messages),
``claimed`` and ``heartbeat`` (Unix times). While working, the holder refreshes ``heartbeat`` from a
thread every ``heartbeat_s`` (replacing the file atomically, after checking it still owns it), and it
deletes the claim when done.

A claim is stale when its heartbeat and its file's mtime are both older than ``stale_after_s``, or
when it names this host and a process that no longer runs. A stale claim is taken over in two steps:
the taker first holds ``<claim>.takeover`` (itself a claim, created with ``O_EXCL``, so one taker at a
time), checks that the claim is still the very file it judged stale (same inode, mtime and size: no
other taker replaced it meanwhile), and removes it; then every contender, the taker included, tries
``O_EXCL`` again and one wins. The removal renames the file aside first and puts it back with
``os.link`` (which never replaces a newer claim) should its owner have refreshed it at that instant.

A holder stalled longer than ``stale_after_s`` (suspended, or a frozen network file system) can lose
its claim to another process; the work is then done twice, never wrongly, because its output is
committed atomically. Hosts sharing a file system must have distinct host names and clocks that agree
to well within ``stale_after_s``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xbench.core.atomic_io import atomic_write_bytes, pid_alive, process_start, temp_path, this_host

log = logging.getLogger(__name__)

__all__ = ["Claim", "ClaimInfo", "ClaimSettings", "hold", "read_claim", "try_claim"]


@dataclass(frozen=True)
class ClaimSettings:
    """Timing of claims: stale after ``stale_after_s`` without a heartbeat; heartbeat and polling periods."""

    stale_after_s: float = 120.0
    heartbeat_s: float = 10.0
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_s < self.stale_after_s or self.poll_s <= 0:
            raise ValueError(
                f"claim timing needs 0 < heartbeat_s < stale_after_s and poll_s > 0; got heartbeat_s="
                f"{self.heartbeat_s}, stale_after_s={self.stale_after_s}, poll_s={self.poll_s}"
            )


@dataclass(frozen=True)
class ClaimInfo:
    """A claim file as read: its JSON fields (``None`` while its creator has not written them yet) and stat."""

    owner: str | None
    host: str | None
    pid: int | None
    pid_start: int | None
    what: str
    heartbeat: float | None
    file_id: tuple[int, int, int]  # (inode, mtime_ns, size): which file was judged

    def stale_reason(self, settings: ClaimSettings, now: float | None = None) -> str | None:
        """Why the claim is stale, or ``None`` while its owner may still be working."""
        now = time.time() if now is None else now
        if self.host == this_host() and self.pid is not None and not pid_alive(self.pid, self.pid_start):
            return f"process {self.pid} on {self.host} is gone"
        last = max(self.file_id[1] / 1e9, self.heartbeat or 0.0)
        if now - last > settings.stale_after_s:
            return f"no heartbeat for {now - last:.0f} s (owner {self.host}:{self.pid})"
        return None

    def describe(self) -> str:
        return f"{self.host or '?'}:{self.pid or '?'}"


def read_claim(path: Path) -> ClaimInfo | None:
    """The claim at ``path``, or ``None`` when there is none."""
    try:
        st = os.stat(path)
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    try:
        data: dict[str, Any] = json.loads(raw)
        if not isinstance(data, dict):
            data = {}
    except ValueError:  # created a moment ago, content not written yet
        data = {}

    def num(key: str, kind: type) -> Any:
        value = data.get(key)
        return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return ClaimInfo(
        owner=data.get("owner") if isinstance(data.get("owner"), str) else None,
        host=data.get("host") if isinstance(data.get("host"), str) else None,
        pid=num("pid", int),
        pid_start=num("pid_start", int),
        what=str(data.get("what", "")),
        heartbeat=num("heartbeat", float),
        file_id=(st.st_ino, st.st_mtime_ns, st.st_size),
    )


class Claim:
    """A claim this process holds; :meth:`keep_alive` refreshes it from a thread and releases it at the end."""

    def __init__(self, path: Path, owner: str, what: str, settings: ClaimSettings) -> None:
        self.path, self.owner, self.what, self.settings = Path(path), owner, what, settings
        self.claimed = time.time()
        self.lost = False

    def _content(self) -> bytes:
        pid = os.getpid()
        record = {
            "owner": self.owner,
            "host": this_host(),
            "pid": pid,
            "pid_start": process_start(pid),
            "what": self.what,
            "claimed": self.claimed,
            "heartbeat": time.time(),
        }
        return (json.dumps(record, sort_keys=True) + "\n").encode()

    def held(self) -> bool:
        """Whether the claim file is still this claim (not released, not taken over)."""
        info = read_claim(self.path)
        return info is not None and info.owner == self.owner

    def refresh(self) -> bool:
        """Renew the heartbeat; ``False`` (and :attr:`lost`) when another process has taken the claim over."""
        if not self.held():
            self.lost = True
            return False
        atomic_write_bytes(self.path, self._content())
        return True

    def release(self) -> None:
        """Delete the claim if it is still this one."""
        if self.held():
            self.path.unlink(missing_ok=True)

    @contextmanager
    def keep_alive(self) -> Iterator[Claim]:
        """Refresh the heartbeat every ``heartbeat_s`` from a thread while the block runs; release at the end."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.settings.heartbeat_s):
                if not self.refresh():
                    log.warning("claim %s (%s) was taken over by another process", self.path, self.what)
                    return

        thread = threading.Thread(target=beat, name=f"xbench-claim {self.what}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.release()


def _create(path: Path, what: str, settings: ClaimSettings) -> Claim | None:
    claim = Claim(path, secrets.token_hex(8), what, settings)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return None
    with os.fdopen(fd, "wb") as fh:
        fh.write(claim._content())
        fh.flush()
        os.fsync(fh.fileno())
    return claim


def _remove_if_same(path: Path, judged: ClaimInfo) -> None:
    """Remove the claim at ``path`` if it is still the file ``judged`` describes (see the module docstring)."""
    aside = temp_path(path)
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        st = os.stat(aside)
        if (st.st_ino, st.st_mtime_ns, st.st_size) != judged.file_id:
            try:  # a fresh claim replaced the stale one meanwhile: put it back, unless a newer one exists
                os.link(aside, path)
            except FileExistsError:
                pass
    finally:
        aside.unlink(missing_ok=True)


def _take_over(path: Path, judged: ClaimInfo, settings: ClaimSettings) -> None:
    """Remove the stale claim ``judged`` at ``path`` while holding its takeover guard (see the module docstring)."""
    guard_path = path.with_name(path.name + ".takeover")
    guard = _create(guard_path, f"takeover of {path.name}", settings)
    if guard is None:  # another taker is at it; a guard left by a taker that died is removed
        held = read_claim(guard_path)
        if held is not None and held.stale_reason(settings) is not None:
            _remove_if_same(guard_path, held)
        return
    try:
        current = read_claim(path)
        if current is not None and current.file_id == judged.file_id:
            _remove_if_same(path, judged)
    finally:
        guard.release()


def try_claim(path: Path, settings: ClaimSettings | None = None, what: str = "") -> Claim | None:
    """Claim ``path`` now (taking over a stale claim), or ``None`` while a live process holds it."""
    settings = settings or ClaimSettings()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        claim = _create(path, what or path.name, settings)
        if claim is not None:
            return claim
        info = read_claim(path)
        if info is None:
            continue  # released meanwhile
        reason = info.stale_reason(settings)
        if reason is None:
            return None
        log.info("taking over the stale claim %s (%s): %s", path, info.what, reason)
        _take_over(path, info, settings)
    return None


@contextmanager
def hold(
    path: Path,
    settings: ClaimSettings | None = None,
    what: str = "",
    on_wait: Callable[[ClaimInfo], None] | None = None,
) -> Iterator[Claim]:
    """Wait until ``path`` can be claimed, then hold it (heartbeat running) for the block."""
    settings = settings or ClaimSettings()
    waited = False
    while (claim := try_claim(path, settings, what)) is None:
        info = read_claim(path)
        if not waited and info is not None:
            waited = True
            if on_wait is not None:
                on_wait(info)
            log.info("waiting for %s, claimed by %s", what or path, info.describe())
        time.sleep(settings.poll_s)
    with claim.keep_alive():
        yield claim
