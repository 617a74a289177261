"""The result record: JSON round trip, format version check, one row per track, the atomic writer's mode."""

import json
import os
import stat
import subprocess
import sys

import pytest

from xbench.core.atomic_io import atomic_write_json
from xbench.scoring.record import (
    FORMAT_VERSION,
    TABLE_COLUMNS,
    RecordFormatError,
    ResultRecord,
    TrackScore,
    read_records,
)
from xbench.scoring.table import table


def _record(task="esc50", slug="Enc-1", **kw):
    return ResultRecord(
        task=task,
        encoder_slug=slug,
        weight=400.0,
        tracks={
            "mlp": TrackScore("accuracy", 0.8, raw=0.8, ci_low=0.75, ci_high=0.85, folds=[0.8], extra={"probe": {}}),
            "knn": TrackScore("accuracy", 0.5, raw=0.5, ci_low=0.45, ci_high=0.55),
        },
        formal_name="ESC-50",
        domain="sound",
        test_count=400,
        encoder={"class": "Enc", "fingerprint": "1"},
        run_settings={"bootstrap_rounds": 10},
        provenance={"host": "h", "timings": {"embed_s": 1.0}},
        **kw,
    )


def test_round_trip_through_json(tmp_path):
    record = _record()
    path = tmp_path / "esc50@v1.json"
    atomic_write_json(path, record.to_dict())
    obj = json.loads(path.read_text())
    assert obj["format_version"] == FORMAT_VERSION
    assert obj["tracks"]["mlp"]["ci95"] == [0.75, 0.85] and obj["tracks"]["mlp"]["probe"] == {}
    assert obj["host"] == "h" and obj["encoder"]["class"] == "Enc" and obj["encoder_slug"] == "Enc-1"
    assert ResultRecord.read(path) == record
    assert read_records(path) == [record]
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"results": [obj, _record("other").to_dict()], "averages": []}))
    assert [r.task for r in read_records(summary)] == ["esc50", "other"]
    (tmp_path / "unrelated.json").write_text("{}")
    assert read_records(tmp_path / "unrelated.json") == []


def test_results_without_a_format_version_read_as_version_1():
    old = {"task": "t", "weight": 5, "encoder_slug": "E-1", "tracks": {"knn": {"score": 0.5, "ci95": [0.4, 0.6]}}}
    record = ResultRecord.from_dict(old)
    assert (record.formal_name, record.protocol, record.test_count) == ("t", "xbench", None)
    assert record.tracks["knn"].ci_high == 0.6


def test_unknown_format_versions_and_broken_records_name_the_file(tmp_path):
    path = tmp_path / "future@v1.json"
    path.write_text(json.dumps({**_record().to_dict(), "format_version": 99}))
    with pytest.raises(RecordFormatError, match=r"future@v1\.json: result format version 99 is not supported"):
        ResultRecord.read(path)
    path.write_text(json.dumps({"task": "t", "tracks": {}}))
    with pytest.raises(RecordFormatError, match=r"future@v1\.json: not a result record \(missing weight\)"):
        ResultRecord.read(path)
    path.write_text(json.dumps({"task": "t", "weight": 1, "tracks": {"mlp": {"metric": "x"}}}))
    with pytest.raises(RecordFormatError, match=r"future@v1\.json: invalid result record"):
        ResultRecord.read(path)
    path.write_text("{not json")
    with pytest.raises(RecordFormatError, match=r"future@v1\.json: unreadable JSON"):
        ResultRecord.read(path)


def test_the_leaderboard_and_compare_refuse_an_unknown_format(tmp_path):
    from xbench.report.compare import CompareError, find_results
    from xbench.report.leaderboard import LeaderboardError, load_results

    (tmp_path / "esc50@v1.json").write_text(json.dumps({**_record().to_dict(), "format_version": 2}))
    with pytest.raises(LeaderboardError, match="format version 2"):
        load_results(tmp_path)
    with pytest.raises(CompareError, match="format version 2"):
        find_results(tmp_path)


def test_one_row_per_track_in_the_table_layout():
    frame = table([_record("b"), _record("a")])
    assert list(frame.columns) == TABLE_COLUMNS
    assert list(zip(frame.task, frame.track, strict=True)) == [("a", "knn"), ("a", "mlp"), ("b", "knn"), ("b", "mlp")]
    row = frame.iloc[1]
    assert (row.score, row.ci_low, row.ci_high, row.test_count, row.formal_name) == (0.8, 0.75, 0.85, 400, "ESC-50")


def test_report_code_imports_without_torch():
    code = "import sys, xbench.report.leaderboard, xbench.report.plots; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_atomic_writes_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", _record().to_dict())
        os.umask(0o077)
        atomic_write_json(tmp_path / "b.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600
