"""The test-oracle helpers of tests/conftest.py: a missing oracle skips locally and fails under CI=true;
an optional zoo package always skips; every oracle import in the tests goes through the helpers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import OPTIONAL_CARDS, ORACLES, optional_oracle, oracles_required, require_optional, require_oracle

TESTS = Path(__file__).resolve().parent
MISSING = "xares.no_such_module_for_a_test"  # an oracle's root with a submodule that does not exist

INNER = textwrap.dedent(
    f"""
    import conftest
    from conftest import optional_oracle, require_oracle, require_optional

    def test_missing_oracle():
        require_oracle({MISSING!r})

    def test_missing_live_oracle():
        assert optional_oracle({MISSING!r}) is None

    def test_missing_optional_package():
        require_optional("torchcrepe.no_such_module_for_a_test")

    def test_present_oracle(monkeypatch):
        monkeypatch.setitem(conftest.ORACLES, "json", "the standard library")
        assert require_oracle("json.decoder").__name__ == "json.decoder"
        assert optional_oracle("json").__name__ == "json"
    """
)


def _outcomes(tmp_path: Path, source: str, ci: str | None) -> tuple[int, dict[str, str]]:
    """Run ``source`` as a test module in a child pytest: its exit code and {test: passed/failed/skipped/error}."""
    (tmp_path / "test_inner.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
    if ci is not None:
        env["CI"] = ci
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", str(tmp_path),
         f"--junitxml={report}", str(tmp_path)],  # fmt: skip
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name") or ""] = {"failure": "failed"}.get(kinds[0], kinds[0]) if kinds else "passed"
    return run.returncode, outcomes


def test_a_missing_oracle_skips_locally(tmp_path):
    code, outcomes = _outcomes(tmp_path, INNER, ci=None)
    assert outcomes == {
        "test_missing_oracle": "skipped",
        "test_missing_live_oracle": "passed",
        "test_missing_optional_package": "skipped",
        "test_present_oracle": "passed",
    }
    assert code == 0


def test_a_missing_oracle_fails_under_ci(tmp_path):
    code, outcomes = _outcomes(tmp_path, INNER, ci="true")
    assert outcomes == {
        "test_missing_oracle": "failed",
        "test_missing_live_oracle": "failed",
        "test_missing_optional_package": "skipped",  # an optional zoo card is not an oracle
        "test_present_oracle": "passed",
    }
    assert code == 1


@pytest.mark.parametrize("value, strict", [("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False)])
def test_which_ci_values_require_the_oracles(monkeypatch, value, strict):
    monkeypatch.setenv("CI", value)
    assert oracles_required() is strict
    if not strict:
        with pytest.raises(pytest.skip.Exception, match="no_such_module"):
            require_oracle(MISSING)
    else:
        with pytest.raises(pytest.fail.Exception, match="CI=true"):
            require_oracle(MISSING)


def test_helpers_refuse_names_outside_their_lists():
    with pytest.raises(ValueError, match="not a test oracle"):
        require_oracle("numpy")
    with pytest.raises(ValueError, match="not a test oracle"):
        optional_oracle("resemblyzer")
    with pytest.raises(ValueError, match="not an optional zoo package"):
        require_optional("xares")
    assert not set(ORACLES) & set(OPTIONAL_CARDS.values())


def test_every_oracle_import_in_the_tests_goes_through_the_helpers():
    """No test skips on a missing package by hand: pytest.importorskip, find_spec or an except ImportError
    around an oracle would skip under CI=true too."""
    names = "|".join(map(re.escape, [*ORACLES, *OPTIONAL_CARDS.values()]))
    by_hand = re.compile(rf"importorskip\(|find_spec\([\"']({names})|^\s*(from|import) ({names})\b", re.M)
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == "conftest.py" or path.parent.name == "fixtures":
            continue  # the helpers themselves; fixture generators and oracle scripts run the oracles directly
        text = path.read_text()
        offenders += [f"{path.relative_to(TESTS)}: {m.group(0).strip()}" for m in by_hand.finditer(text)]
    assert offenders == []
