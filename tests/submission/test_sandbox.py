"""The sandbox itself (xbench.submission.sandbox): what a step sees, the limits, and refusing without bwrap.

Each property is shown against a control: the same code unconfined (``Sandbox(enabled=False)``) does
reach the file, the socket or the memory, so the sandboxed assertion can fail.
"""

import json
import os
import stat
import sys

import pytest
from sandbox_helpers import require_bwrap, tcp_listener

from xbench.cli import main
from xbench.submission.sandbox import INSTALL_HINT, Limits, Sandbox, SandboxUnavailable, harness_paths

PROBE = """
import json, os, socket, sys
home_secret, port, outside = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = {"home": os.environ["HOME"], "root": sorted(os.listdir("/")), "etc": sorted(os.listdir("/etc"))}
try:
    seen["secret"] = open(home_secret).read()
except OSError as exc:
    seen["secret"] = type(exc).__name__
try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    seen["connect"] = "connected"
except OSError as exc:
    seen["connect"] = type(exc).__name__
for name, path in (("entry", "written.txt"), ("outside", outside)):
    try:
        open(path, "w").write("x")
        seen[name] = "written"
    except OSError as exc:
        seen[name] = type(exc).__name__
print(json.dumps(seen))
"""


def _run(sandbox, tmp_path, args, name="probe"):
    entry = tmp_path / "entry"
    entry.mkdir(exist_ok=True)
    return sandbox.run(sys.executable, args, cwd=entry, scratch=tmp_path / "scratch", logs=tmp_path / "logs", name=name)


@pytest.mark.parametrize("sealed", [True, False], ids=["sandbox", "control-unconfined"])
def test_a_step_sees_no_home_no_network_and_writes_only_its_folders(tmp_path, sealed):
    if sealed:
        require_bwrap()
    secret = tmp_path / "home" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("the user's secret")
    outside = tmp_path / "outside.txt"
    with tcp_listener() as (port, accepted):
        run = _run(Sandbox(enabled=sealed), tmp_path, ["-c", PROBE, str(secret), str(port), str(outside)])
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["home"] == str(tmp_path / "scratch" / "home")  # a private HOME either way
    assert seen["entry"] == "written" and (tmp_path / "entry" / "written.txt").is_file()
    if sealed:
        assert seen["secret"] == "FileNotFoundError"  # the rest of the machine is absent
        assert seen["connect"] in ("ConnectionRefusedError", "OSError") and not accepted
        # the write lands in the sandbox's private /tmp (tmp_path is under /tmp here) or fails; never on the host
        assert not outside.exists()
        if seen["outside"] == "written":
            assert run.problem == f"left files outside its folder: {outside}"
        else:
            assert run.problem is None
        system = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "tmp"}
        harness = {p.parts[1] for p in harness_paths(sys.executable)}
        assert set(seen["root"]) <= system | harness | {tmp_path.parts[1]}
        assert set(seen["etc"]) <= {"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime"}
    else:
        assert seen["secret"] == "the user's secret" and seen["connect"] == "connected" and accepted
        assert seen["outside"] == "written" and outside.is_file() and run.problem is None


def test_the_harness_environment_is_read_only(tmp_path):
    require_bwrap()
    code = "import sys, xbench; open(sys.argv[1] + '/pwned', 'w')"
    run = _run(Sandbox(), tmp_path, ["-c", code, os.path.dirname(os.path.dirname(sys.executable))])
    assert "Read-only file system" in run.stderr and run.status["returncode"] == 1


@pytest.mark.parametrize(
    "case, limits, code, reason",
    [
        ("wall", Limits(wall_seconds=2), "import time; time.sleep(60)", "wall time: still running after the 2 s limit"),
        ("cpu", Limits(cpu_seconds=1), "while True: pass", "CPU time: reached the 1 s limit"),
        (
            "tree-memory",  # three processes under the per-process limit, together over the tree limit
            Limits(memory_bytes=600 * 2**20),
            "import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        b = bytearray(os.urandom(1))"
            " * (250 * 2**20)\n        time.sleep(60)\nos.wait()",
            "memory: the process tree reached",
        ),
    ],
)
def test_limits_end_the_step_with_a_reason(tmp_path, case, limits, code, reason):
    require_bwrap()
    run = _run(Sandbox(limits=limits), tmp_path, ["-c", code], name=case)
    assert run.problem is not None and run.problem.startswith(reason), run.problem
    assert "\n" not in run.problem
    if case == "tree-memory":
        assert run.peak_rss_bytes > limits.memory_bytes


def test_peak_memory_is_the_whole_tree(tmp_path):
    require_bwrap()
    code = (
        "import os, time\nkids = []\nfor _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n"
        "        b = bytearray(os.urandom(1)) * (100 * 2**20)\n        time.sleep(1.5)\n        os._exit(0)\n"
        "    kids.append(pid)\nfor pid in kids:\n    os.waitpid(pid, 0)"
    )
    run = _run(Sandbox(), tmp_path, ["-c", code])
    assert run.problem is None
    assert run.peak_rss_bytes >= 300 * 2**20  # three children of 100 MiB each, alive together
    assert run.status["maxrss_bytes"] < 200 * 2**20  # while no single process held more than one


def test_leftovers_in_home_and_tmp_are_named(tmp_path):
    require_bwrap()
    code = "import os; open(os.path.expanduser('~/.keep'), 'w'); open('/tmp/cache.bin', 'w')"
    run = _run(Sandbox(), tmp_path, ["-c", code])
    assert run.problem.startswith("left files outside its folder: ")
    assert str(tmp_path / "scratch" / "home" / ".keep") in run.problem and "/tmp/cache.bin" in run.problem


def test_missing_or_unusable_bwrap_is_refused_with_how_to_install(tmp_path, monkeypatch, capsys):
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        Sandbox(bwrap="xbench-no-such-bwrap").check()
    fake = tmp_path / "bin" / "bwrap"  # a bwrap that cannot create namespaces, as without user namespaces
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(SandboxUnavailable, match="No permissions to creating new namespace") as exc:
        Sandbox(bwrap=str(fake)).check()
    assert "--no-sandbox" in str(exc.value) and INSTALL_HINT in str(exc.value)
    Sandbox(enabled=False, bwrap=str(fake)).check()  # the opt-out needs no bwrap
    # the command line: a tool error (exit 2), one error line, before anything of the entry is read
    monkeypatch.setenv("PATH", str(fake.parent))
    (tmp_path / "entry.zip").write_bytes(b"not read")
    assert main(["verify-submission", str(tmp_path / "entry.zip")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bubblewrap") and "--no-sandbox" in err[0]
    (tmp_path / "enc.py").write_text("raise SystemExit('never imported')\n")
    assert main(["package", "--encoder", str(tmp_path / "enc.py"), "--out", str(tmp_path / "sub.zip")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bubblewrap") and not (tmp_path / "sub.zip").exists()
