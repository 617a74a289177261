"""Claims on shared work: created atomically, kept alive by a heartbeat, taken over only when stale, and
handed out by ``take_units`` so processes sharing a cache never do one unit twice.

Expectations come from the claim contract (module docstring of ``xbench.core.claims``): a live owner's
claim is never taken; a dead pid on this host, or a heartbeat older than the timeout, is.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from xbench.core.atomic_io import this_host
from xbench.core.claims import ClaimSettings, hold, read_claim, try_claim
from xbench.embed.claims import claim_path, take_units

FAST = ClaimSettings(stale_after_s=2.0, heartbeat_s=0.2, poll_s=0.05)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _fake_claim(path: Path, host: str, pid: int, heartbeat: float, age_s: float = 0.0) -> None:
    record = {"owner": "someone", "host": host, "pid": pid, "what": "x", "claimed": heartbeat, "heartbeat": heartbeat}
    path.write_text(json.dumps(record))
    os.utime(path, (time.time() - age_s, time.time() - age_s))


def test_a_claim_is_exclusive_and_released(tmp_path):
    path = tmp_path / "u.claim"
    first = try_claim(path, FAST, "u")
    assert first is not None and first.held()
    info = read_claim(path)
    assert info is not None and (info.host, info.pid, info.what) == (this_host(), os.getpid(), "u")
    assert info.owner == first.owner and info.heartbeat is not None
    assert try_claim(path, FAST) is None  # held by a live process (this one)
    first.release()
    assert not path.exists()
    second = try_claim(path, FAST)
    assert second is not None and second.owner != first.owner


@pytest.mark.parametrize(
    "case, taken",
    [
        ("dead pid on this host", True),
        ("live pid on this host, fresh heartbeat", False),
        ("other host, heartbeat older than the timeout", True),
        ("other host, fresh heartbeat", False),
        ("content not written yet, fresh file", False),
        ("content not written yet, old file", True),
    ],
)
def test_only_a_stale_claim_is_taken_over(tmp_path, case, taken):
    path = tmp_path / "u.claim"
    now = time.time()
    if case == "dead pid on this host":
        _fake_claim(path, this_host(), _dead_pid(), now)  # heartbeat fresh: the dead pid alone makes it stale
    elif case == "live pid on this host, fresh heartbeat":
        _fake_claim(path, this_host(), os.getppid(), now)
    elif case == "other host, heartbeat older than the timeout":
        _fake_claim(path, "elsewhere", 1, now - 10 * FAST.stale_after_s, age_s=10 * FAST.stale_after_s)
    elif case == "other host, fresh heartbeat":
        _fake_claim(path, "elsewhere", 1, now)
    else:
        path.write_bytes(b"")
        if case.endswith("old file"):
            os.utime(path, (now - 10 * FAST.stale_after_s,) * 2)
    claim = try_claim(path, FAST)
    assert (claim is not None) == taken, case
    if taken:
        assert read_claim(path).owner == claim.owner and read_claim(path).pid == os.getpid()
    else:
        assert read_claim(path).owner in ("someone", None)  # untouched


def test_a_heartbeat_keeps_a_long_claim_alive_and_a_killed_holder_loses_it(tmp_path):
    path = tmp_path / "u.claim"
    with hold(path, FAST) as claim:
        time.sleep(2.5 * FAST.stale_after_s)  # far past the timeout: only the heartbeat keeps it
        assert try_claim(path, FAST) is None and claim.held() and not claim.lost
        assert time.time() - read_claim(path).heartbeat < FAST.stale_after_s
    assert not path.exists()

    script = (
        "import sys, time\nfrom xbench.core.claims import ClaimSettings, try_claim\n"
        "c = try_claim(sys.argv[1], ClaimSettings(stale_after_s=600, heartbeat_s=1))\n"
        "print('held', flush=True)\ntime.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert try_claim(path, FAST) is None  # its holder lives
        proc.kill()
        proc.wait()
        taken = try_claim(path, FAST)  # the pid is gone: taken over at once, long before the 600 s timeout
        assert taken is not None and read_claim(path).pid == os.getpid()
    finally:
        proc.kill()


def _take(path: Path, barrier: threading.Barrier, won: list) -> None:
    barrier.wait()
    claim = try_claim(path, FAST)
    if claim is not None:
        won.append(claim)


def test_of_many_takers_of_one_stale_claim_exactly_one_wins(tmp_path):
    for attempt in range(20):
        path = tmp_path / f"u{attempt}.claim"
        if attempt % 2:  # stale by a dead pid on this host, or by an old heartbeat of another host
            _fake_claim(path, this_host(), _dead_pid(), time.time())
        else:
            _fake_claim(path, "elsewhere", 1, 0.0, age_s=100)
        barrier = threading.Barrier(8)
        won: list = []
        threads = [threading.Thread(target=_take, args=(path, barrier, won)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, (attempt, len(won))
        assert read_claim(path).owner == won[0].owner
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f".u{attempt}.")] == []  # nothing set aside


class _Unit:
    def __init__(self, path: Path) -> None:
        self.path = path

    def done(self) -> bool:
        return self.path.exists()


def _worker(folder: str, names: list[str], log: str, start: float) -> None:
    units = [_Unit(Path(folder) / n) for n in names]
    while time.time() < start:  # both processes begin together
        time.sleep(0.005)
    for unit in take_units(units, _Unit.done, FAST):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()} {unit.path.name}\n")
        time.sleep(0.05)  # the "embedding"
        unit.path.write_text("done")  # the commit


def test_two_processes_split_the_units_without_doing_one_twice(tmp_path):
    names = [f"u{i:02d}.npz" for i in range(24)]
    log = tmp_path / "log.txt"
    ctx = multiprocessing.get_context("spawn")
    start = time.time() + 3.0
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), names, str(log), start)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    rows = [line.split() for line in log.read_text().splitlines()]
    embedded = [name for _, name in rows]
    assert sorted(embedded) == names  # every unit once, none twice
    assert len({pid for pid, _ in rows}) == 2  # both took a share
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".claim")]


def test_take_units_waits_for_a_unit_held_elsewhere_and_skips_what_gets_done(tmp_path):
    a, b = _Unit(tmp_path / "a.npz"), _Unit(tmp_path / "b.npz")
    held = try_claim(claim_path(a.path), FAST)  # another owner (same process, other token) embeds a

    def finish_a() -> None:
        time.sleep(0.5)
        a.path.write_text("done")
        held.release()

    threading.Thread(target=finish_a).start()
    start = time.time()
    got = []
    for unit in take_units([a, b], _Unit.done, FAST):
        got.append(unit.path.name)
        unit.path.write_text("done")
    assert got == ["b.npz"]  # a was taken by its holder; this process waited for it, did b meanwhile
    assert time.time() - start >= 0.4 and a.done()


def test_a_stale_claim_of_a_committed_unit_is_cleared(tmp_path):
    unit = _Unit(tmp_path / "a.npz")
    unit.path.write_text("done")
    _fake_claim(claim_path(unit.path), this_host(), _dead_pid(), time.time())
    assert list(take_units([unit], _Unit.done, FAST)) == []
    assert not claim_path(unit.path).exists()
