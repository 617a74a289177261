"""`xbench run --suite all` names every task whose data is missing (private ones included) in one error instead
of stopping at the first; with `--skip-missing` it warns about each and scores the tasks that have their data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from xbench.taskspec.registry import load_tasks

from conftest import clip_task, tone_items


def _xbench(tmp_path, *extra):
    env = {**os.environ, "XBENCH_DATA": str(tmp_path / "empty-data"), "OMP_NUM_THREADS": "1"}
    argv = [
        sys.executable, "-m", "xbench", "run", "--encoder", "logmel", "--suite", "all",
        "--tasks-dir", str(tmp_path / "tasks"), "--output", str(tmp_path / "out"),
        "--cache-dir", str(tmp_path / "cache"), "--bootstrap", "10", "--track", "knn", "--workers", "0", *extra,
    ]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def test_suite_all_lists_every_task_without_data_and_skips_them_when_asked(tmp_path):
    splits = {f"p_{s}": tone_items(n, ["a", "b"] * 2, {"a": 300.0, "b": 2000.0}, s[:2]) for n, s in enumerate("tvs")}
    present = clip_task(tmp_path / "data", "here", splits, ("a", "b"), eval_weight=4)
    absent = present.to_dict() | {"name": "gone", "data_dir": str(tmp_path / "nowhere"), "private": True}
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "here.json").write_text(json.dumps(present.to_dict()))
    (tmp_path / "tasks" / "gone.json").write_text(json.dumps(absent))
    builtin = [t for t in load_tasks().values() if not t.disabled]

    refused = _xbench(tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1  # one error line
    message = refused.stderr
    assert message.startswith(f"error: data missing for {len(builtin) + 1} of {len(builtin) + 2} task(s): ")
    assert all(f"{t.name} (no" in message for t in builtin)  # every one named, not only the first
    assert "gone (no, private: " in message and "here (" not in message and "--skip-missing" in message
    assert not (tmp_path / "out").exists()

    skipped = _xbench(tmp_path, "--skip-missing")
    assert skipped.returncode == 0, skipped.stderr
    warnings = [line for line in skipped.stderr.splitlines() if "skipping task" in line]
    assert len(warnings) == len(builtin) + 1 and any("skipping task gone (no, private" in w for w in warnings)
    assert [p.name for p in (tmp_path / "out").rglob("*@v1.json")] == ["here@v1.json"]
