"""Hostile entries through ``xbench verify-submission``: each is rejected with a one-line reason, and nothing
is left outside the scratch folder (the test's whole tmp_path, which holds the user's HOME and the
folder verification works in, is unchanged afterwards; the host paths the entries aim at do not exist).
"""

import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from sandbox_helpers import entry_zip, require_bwrap, snapshot, tcp_listener

from xbench.cli import main
from xbench.submission.sandbox import Limits
from xbench.submission.verify import VerifyOptions, verify_submission

ENCODER = """\
import os
import sys
from pathlib import Path

import torch

{snippet}


class Frames(torch.nn.Module):
    sampling_rate = 16000
    hop_size_in_ms = 20
    output_dim = 8

    def __init__(self):
        super().__init__()
        self.register_buffer("proj", torch.randn(8, 8, generator=torch.Generator().manual_seed(0)))

    def forward(self, audio):
        frames = audio[:, : audio.shape[1] // 320 * 320].reshape(audio.shape[0], -1, 320)
        return frames[..., :8] @ self.proj
"""

DAEMON = """\
if os.fork() == 0:  # detach a grandchild that keeps writing into the entry folder
    os.setsid()
    if os.fork() == 0:
        import time
        beat = Path(__file__).resolve().parent / "heartbeat.txt"
        while True:
            with open(beat, "a") as fh:
                fh.write(".")
            time.sleep(0.1)
    os._exit(0)
os.wait()
"""


def make_entry(folder: Path, snippet: str = "", meta_edit=None) -> Path:
    """A submission zip of one encoder file whose module runs ``snippet`` when imported."""
    return entry_zip(folder, ENCODER.format(snippet=snippet), "Frames", meta_edit)


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A user HOME with a secret, and the temporary folder verification works in, both under ``tmp_path``."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret.txt").write_text("the user's secret")
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path


def _verify(zip_path: Path, limits: Limits | None = None, keep: bool = False):
    opts = VerifyOptions(long_seconds=2, small_task=False, keep=keep, limits=limits or Limits())
    return verify_submission(zip_path, opts)


HOST_TARGET = f"/tmp/xbench-escaped-{uuid.uuid4().hex}.txt"

CASES = {
    # (a) writes outside its folder: beside it, into HOME at import time, to a host path
    "writes-beside-its-folder": (
        "open(Path(__file__).resolve().parent.parent / 'escaped.txt', 'w').write('x')",
        "escaped.txt",
    ),
    "writes-into-home": (
        "os.makedirs(os.path.expanduser('~/.cache/enc'), exist_ok=True)\n"
        "open(os.path.expanduser('~/.cache/enc/state.txt'), 'w').write('x')",
        "left files outside its folder: ",
    ),
    "writes-to-a-host-path": (f"open({HOST_TARGET!r}, 'w').write('x')", "xbench-escaped-"),
    # (c) reads a file from the user's HOME
    "reads-home": ("SECRET = open({home!r} + '/secret.txt').read()", "FileNotFoundError"),
}


SLOW = pytest.mark.slow  # the same mechanism as a default case; CI runs them (-m slow)


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=SLOW) if c in ("writes-beside-its-folder", "writes-to-a-host-path") else c for c in CASES],
)
def test_an_entry_writing_outside_or_reading_home_is_rejected(world, case):
    require_bwrap()
    snippet, reason = CASES[case]
    entry = make_entry(world, snippet.format(home=str(world / "home")))
    before = snapshot(world)
    res = _verify(entry)
    assert res.exit_code == 1 and res.reason.startswith("checker: ") and reason in res.reason, res.text()
    assert "\n" not in res.reason
    assert "the user's secret" not in json.dumps(res.to_dict())
    assert snapshot(world) == before and not Path(HOST_TARGET).exists()


def test_an_entry_opening_a_socket_is_rejected_and_reaches_nothing(world, capsys):
    require_bwrap()
    with tcp_listener() as (port, accepted):
        entry = make_entry(world, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)")
        before = snapshot(world)
        code = main(["verify-submission", str(entry), "--no-task", "--long-seconds", "2", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["status"] == "rejected" and not accepted  # (b): the host's server saw nothing
    assert report["reason"].startswith("checker: EncoderLoadError: ")
    refused = "enc.py: importing the file failed: ConnectionRefusedError: [Errno 111] Connection refused"
    assert report["reason"].endswith(refused)
    checker = report["steps"][-1]
    assert checker["name"] == "checker" and checker["verdict"] == "fail" and checker["peak_rss_bytes"] > 0
    assert checker["wall_s"] > 0 and report["sandbox"]["kind"] == "bubblewrap"
    assert all(s["wall_s"] >= 0 and s["peak_rss_bytes"] is None for s in report["steps"][:-1])  # harness steps
    assert snapshot(world) == before


@pytest.mark.parametrize(
    "case, snippet, reason",
    [
        pytest.param(  # one allocation over the limit: refused by the per-process data limit
            "one-allocation",
            "import numpy as np\nBIG = np.ones(3 * 2**30, dtype=np.uint8)",
            "MemoryError: Unable to allocate 3.00 GiB",
            marks=SLOW,
        ),
        (  # three forked workers, each under the limit, together over it: the sandbox is killed
            "forked-workers",
            "import numpy as np, time\nfor _ in range(3):\n    if os.fork() == 0:\n"
            "        block = np.ones(400 * 2**20, dtype=np.uint8)\n        time.sleep(60)\ntime.sleep(60)",
            "memory: the process tree reached ",
        ),
    ],
)
def test_an_entry_over_the_memory_limit_is_rejected(world, case, snippet, reason):
    require_bwrap()  # (d)
    entry = make_entry(world, snippet)
    before = snapshot(world)
    start = time.monotonic()
    res = _verify(entry, Limits(memory_bytes=2**30, wall_seconds=120))
    assert res.exit_code == 1 and res.reason.startswith("checker: ") and reason in res.reason, res.text()
    assert "1.00 GiB" in res.reason and "limit" in res.reason and "\n" not in res.reason
    assert time.monotonic() - start < 60  # stopped by the limit, not by the entry's sleep or the wall time
    assert snapshot(world) == before


def test_an_entry_leaving_a_process_behind_is_rejected_and_the_process_ends(world):
    require_bwrap()  # (e)
    entry = make_entry(world, DAEMON)
    before = snapshot(world)
    res = _verify(entry, keep=True)
    assert res.exit_code == 1, res.text()
    assert res.reason.startswith("checker: left 1 process(es) running after it exited (killed): pid ")
    assert "\n" not in res.reason
    beat = res.workdir / "submission" / "heartbeat.txt"
    assert beat.is_file()  # the grandchild did run, in the entry folder
    size = beat.stat().st_size
    time.sleep(0.5)
    assert beat.stat().st_size == size  # and is gone
    shutil.rmtree(res.workdir)  # the scratch folder, kept to look at the heartbeat
    assert snapshot(world) == before


@pytest.mark.parametrize(
    "field, value",
    [
        ("encoder.file", "../../x.py"),
        ("encoder.file", "/tmp/x.py"),
        ("files[0].path", "sub/../../x.py"),
        ("weights[0].path", "../weights.pt"),
        ("download.path", "../../weights.pt"),
    ],
)
def test_metadata_paths_leaving_the_entry_are_rejected_before_anything_runs(world, field, value):
    marker = world / "ran.txt"  # (f): x.py, placed where '../../x.py' would lead, records that it ran
    (world / "tmp" / "x.py").write_text(f"open({str(marker)!r}, 'w')\n")

    def edit(meta):
        if field == "encoder.file":
            meta["encoder"]["file"] = value
            meta["files"][0]["path"] = value
        elif field == "files[0].path":
            meta["files"][0]["path"] = value
        elif field == "weights[0].path":
            meta["weights"] = [{"path": value, "sha256": "0" * 64, "bytes": 1}]
        else:
            meta["download"] = {"url": "file:///dev/null", "sha256": "0" * 64, "path": value}

    entry = make_entry(world, meta_edit=edit)
    before = snapshot(world)
    res = verify_submission(entry, VerifyOptions(long_seconds=2, small_task=False, sandbox=False))
    assert [s.name for s in res.steps] == ["metadata"] and res.exit_code == 1
    why = f"{field} {value!r} is not a relative path inside the entry"
    assert res.reason == f"metadata: {entry.name}: metadata.json: {why}"
    assert not marker.exists() and snapshot(world) == before


@SLOW
def test_no_sandbox_is_an_explicit_loud_opt_out(world, capsys):
    entry = make_entry(world, CASES["writes-into-home"][0])
    code = main(["verify-submission", str(entry), "--no-task", "--long-seconds", "2", "--json", "--no-sandbox"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert captured.err.startswith("WARNING: NO SANDBOX (--no-sandbox)")
    assert report["sandbox"]["kind"] == "none" and "NO SANDBOX" in report["sandbox"]["warning"]
    # the limits and the leftover checks still apply: HOME is private there too
    assert code == 1 and report["reason"].startswith("checker: left files outside its folder: ")
