"""The first process of a sandboxed step (``python -I -B -m xbench.submission.supervisor``; internal).

It sets the step's per-process limits (CPU time, data size, no core files) on itself, so that every
process of the entry inherits them; becomes the child subreaper, so that a process the entry forks
and abandons is re-parented here instead of escaping; runs the command; and once the command has
exited, reports as JSON on ``--status-fd``: its exit status, CPU time and peak RSS, the processes it
left running (then kills them) and the files it left in the private HOME and temporary folders.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
MAX_LISTED = 10


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process (Linux ``prctl``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def process_tree(root: int, proc: Path = Path("/proc")) -> list[int]:
    """The pids of every live descendant of ``root`` (not ``root`` itself), read from ``proc/<pid>/stat``."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
        children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        kids = children.get(queue.pop(), [])
        found += kids
        queue += kids
    return found


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200] or "?"


def _reap() -> None:
    """Collect every exited child (orphans included) without waiting."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def end_leftovers() -> list[str]:
    """Describe, then kill, every process still running under this one; repeats until none is left."""
    _reap()
    found = [f"pid {pid}: {_cmdline(pid)}" for pid in process_tree(os.getpid())]
    for _ in range(100):
        pids = process_tree(os.getpid())
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
        _reap()
    return found


def _mount_points() -> set[str]:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return set()
    unescape = {"\\040": " ", "\\011": "\t", "\\012": "\n", "\\134": "\\"}
    points = set()
    for line in lines:
        point = line.split()[4]
        for code, char in unescape.items():
            point = point.replace(code, char)
        points.add(point)
    return points


def stray_files(folders: Sequence[str]) -> list[str]:
    """Up to :data:`MAX_LISTED` paths left in ``folders`` (each expected to be empty), plus a count of the rest.

    Mount points inside them (the sandbox's own binds under a private ``/tmp``) are not descended into.
    """
    mounts, found = _mount_points(), []
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in sorted(dirnames) if os.path.join(dirpath, d) not in mounts]
            found += [os.path.join(dirpath, n) for n in sorted(filenames)]
            found += [os.path.join(dirpath, d) + "/" for d in dirnames if not os.listdir(os.path.join(dirpath, d))]
    more = len(found) - MAX_LISTED
    return found[:MAX_LISTED] + ([f"... and {more} more"] if more > 0 else [])


def set_limits(cpu_seconds: float | None, data_bytes: int | None) -> None:
    """Per-process limits inherited by every process started from here."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if cpu_seconds:
        soft = max(1, int(cpu_seconds))
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 2))  # SIGXCPU, then SIGKILL
    if data_bytes:
        resource.setrlimit(resource.RLIMIT_DATA, (data_bytes, data_bytes))


def supervise(
    command: Sequence[str], cpu_seconds: float | None, data_bytes: int | None, watch: Sequence[str]
) -> dict[str, Any]:
    """Run ``command`` under the limits and return the report (see the module doc)."""
    reaper = become_subreaper()
    set_limits(cpu_seconds, data_bytes)
    child = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, close_fds=True)
    while True:  # as subreaper, collect orphans too until the command itself has exited
        pid, status, usage = os.wait4(-1, 0)
        if pid == child.pid:
            break
    child.returncode = os.waitstatus_to_exitcode(status)
    return {
        "returncode": child.returncode,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_bytes": usage.ru_maxrss * 1024,
        "subreaper": reaper,
        "leftovers": end_leftovers(),
        "stray_files": stray_files(watch),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; the command follows ``--``."""
    parser = argparse.ArgumentParser(prog="python -m xbench.submission.supervisor")
    parser.add_argument("--status-fd", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=float, default=None)
    parser.add_argument("--data-bytes", type=int, default=None)
    parser.add_argument("--watch", action="append", default=[], help="a folder that must be left empty")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    report = supervise(command, args.cpu_seconds, args.data_bytes, args.watch)
    with os.fdopen(args.status_fd, "w") as status:
        status.write(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
