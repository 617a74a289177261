"""Plots (matplotlib, Agg): valid PNG and SVG files, task names as SVG text in mixed case, interval whiskers."""

import os
import stat
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.container import ErrorbarContainer
from PIL import Image

from xbench.report.plots import domain_chart, figure, task_chart, write_overview, write_plots
from xbench.scoring.table import complete

SVG = "{http://www.w3.org/2000/svg}"
TASKS = (("speechy", "Speech Commands V1", "speech"), ("musical", "Key scratching car", "music"))


@pytest.fixture
def frame():
    """An :func:`xbench.pipeline.run.evaluate`-style frame of two encoders, two tasks, two tracks."""
    rows = []
    for enc, base in (("EncA-1", 0.4), ("EncB-2", 0.7)):
        for task, formal, domain in TASKS:
            for track, s in (("mlp", base), ("knn", base / 2)):
                rows.append(
                    {"encoder": enc, "task": task, "formal_name": formal, "domain": domain, "private": False}
                    | {"track": track, "metric": "accuracy", "raw": s, "score": s, "ci_low": s - 0.1}
                    | {"ci_high": s + 0.1, "weight": 10, "protocol": "xbench"}
                )
    return pd.DataFrame(rows)


def _svg_texts(path):
    return [t.text or "" for t in ET.parse(path).iter(f"{SVG}text")]


def _check_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.load()  # decodes every chunk (CRCs, zlib stream)
        return np.asarray(img.convert("RGB"))


def test_files_are_valid_and_name_the_tasks_in_mixed_case(frame, tmp_path):
    written = write_plots(frame, tmp_path / "plots")
    assert sorted(p.name for p in written) == sorted(
        f"{kind}_{track}.{ext}" for kind in ("tasks", "domains") for track in ("mlp", "knn") for ext in ("svg", "png")
    )
    texts = _svg_texts(tmp_path / "plots" / "tasks_mlp.svg")
    assert {"Speech Commands V1", "Key scratching car", "EncA-1", "EncB-2", "MLP track: per-task scores"} <= set(texts)
    assert "kNN track: weighted averages" in _svg_texts(tmp_path / "plots" / "domains_knn.svg")
    pixels = _check_png(tmp_path / "plots" / "tasks_mlp.png")
    first_colour = (pixels == (0x4E, 0x79, 0xA7)).all(axis=-1).sum()
    assert first_colour > 500  # the first encoder's bars were drawn


def test_task_bars_carry_interval_whiskers(frame, tmp_path):
    table = complete(frame)
    chart = task_chart(table, "mlp")
    assert chart.categories == ["Key scratching car", "Speech Commands V1"]  # X-ARES order: by task name
    np.testing.assert_allclose(chart.high - chart.low, 0.2)
    ax = figure([chart]).axes[0]
    whiskers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(whiskers) == 2  # one per encoder
    segments = [seg for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    spans = sorted(round(float(seg[1, 1] - seg[0, 1]), 6) for seg in segments)
    assert spans == [0.2] * 4  # every task of both encoders: a whisker from ci_low to ci_high
    # no interval recorded: no whisker for that bar
    table.loc[(table.encoder == "EncA-1") & (table.track == "mlp"), ["ci_low", "ci_high"]] = np.nan
    ax = figure([task_chart(table, "mlp")]).axes[0]
    assert len([c for c in ax.containers if isinstance(c, ErrorbarContainer)]) == 1
    # the written SVG holds the whisker lines as well
    write_plots(frame, tmp_path)
    groups = [g.get("id", "") for g in ET.parse(tmp_path / "tasks_knn.svg").iter(f"{SVG}g")]
    assert sum(g.startswith("LineCollection") for g in groups) == 2


def test_domain_chart_and_the_demo_overview(frame, tmp_path):
    chart = domain_chart(complete(frame), "knn")
    assert chart.categories == ["Music", "Speech", "Public tasks", "All tasks"]
    np.testing.assert_allclose(chart.values, [[0.2] * 4, [0.35] * 4])
    paths = write_overview(frame, tmp_path / "board", "Offline suite (small)")
    assert [p.name for p in paths] == ["board.svg", "board.png"]
    texts = _svg_texts(tmp_path / "board.svg")
    assert "Offline suite (small)" in texts and texts.count("Weighted average (all)") == 2  # one per track panel
    _check_png(tmp_path / "board.png")


def test_files_honour_the_umask(frame, tmp_path):
    old = os.umask(0o027)
    try:
        written = write_plots(frame, tmp_path)
    finally:
        os.umask(old)
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o640}
