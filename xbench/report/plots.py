"""Leaderboard plots with matplotlib: per-task grouped bars with 95 % interval whiskers, per-domain averages.

Charts are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas (no pyplot, so no global
backend state and no figure registry), and written as SVG (text kept as ``<text>``) and PNG through the
atomic writer. Scores are the 0–1 normalised scores of the results table (:mod:`xbench.scoring.table`);
whiskers span ``ci_low``–``ci_high`` where a run recorded an interval.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from xbench.core.atomic_io import atomic_write_bytes
from xbench.scoring.table import TRACK_TITLES, averages, complete, encoders, task_order, track_order

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
WHISKER = "#333333"
AVERAGE_LABEL = "Weighted average (all)"
GROUP_LABELS = {"public": "Public tasks", "private": "Private tasks", "all": "All tasks"}
FORMATS = ("svg", "png")
_RC = {"svg.fonttype": "none", "svg.hashsalt": "xbench", "font.size": 9}


@dataclass
class BarChart:
    """Grouped bars: ``values[s, c]`` for series ``s`` (encoders) in category ``c`` (tasks or groups).

    ``low``/``high`` (same shape, NaN where unknown) are the whisker ends.
    """

    title: str
    categories: list[str]
    series: list[str]
    values: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    ylabel: str = "normalised score (0–1)"


def _track_title(track: str) -> str:
    return f"{TRACK_TITLES.get(track, track)} track"


def task_chart(frame: Any, track: str, with_average: bool = False) -> BarChart:
    """Per-task grouped bars of one track (X-ARES task order) with 95 % intervals.

    ``with_average`` adds each encoder's weighted average over all tasks as a last group (no whisker).
    """
    part = frame[frame.track == track]
    series = encoders(frame)
    tasks = [t for t in task_order(frame) if t in set(part.task)]
    names = part.drop_duplicates("task").set_index("task").formal_name
    columns = len(tasks) + int(with_average)
    values, low, high = (np.full((len(series), columns), np.nan) for _ in range(3))
    for r in part.itertuples():
        s, c = series.index(r.encoder), tasks.index(r.task)
        values[s, c], low[s, c], high[s, c] = r.score, r.ci_low, r.ci_high
    categories = [str(names[t]) for t in tasks]
    if with_average:
        avg = averages(frame)
        for r in avg[(avg.track == track) & (avg.group == "all")].itertuples():
            values[series.index(r.encoder), -1] = r.score
        categories.append(AVERAGE_LABEL)
    return BarChart(f"{_track_title(track)}: per-task scores", categories, series, values, low, high)


def domain_chart(frame: Any, track: str) -> BarChart:
    """Weighted averages per domain, then public, private and all tasks, of one track."""
    avg = averages(frame)
    avg = avg[avg.track == track]
    series = encoders(frame)
    domains = sorted(set(avg.group) - set(GROUP_LABELS))
    groups = domains + [g for g in GROUP_LABELS if g in set(avg.group)]
    values = np.full((len(series), len(groups)), np.nan)
    for r in avg[avg.group.isin(groups)].itertuples():
        values[series.index(r.encoder), groups.index(r.group)] = r.score
    labels = [GROUP_LABELS.get(g, g[:1].upper() + g[1:]) for g in groups]
    return BarChart(f"{_track_title(track)}: weighted averages", labels, series, values, ylabel="weighted average")


def draw_bars(ax: Any, chart: BarChart) -> None:
    """Draw ``chart`` on the axes ``ax``: one bar per finite value, whiskers where both ends are finite."""
    n_series = len(chart.series)
    width = 0.8 / max(n_series, 1)
    x = np.arange(len(chart.categories), dtype=float)
    for s in range(n_series):
        xs, v = x - 0.4 + width * (s + 0.5), chart.values[s]
        shown = np.isfinite(v)
        ax.bar(xs[shown], v[shown], width * 0.92, color=PALETTE[s % len(PALETTE)], label=chart.series[s])
        if chart.low is None or chart.high is None:
            continue
        lo, hi = chart.low[s], chart.high[s]
        whisker = shown & np.isfinite(lo) & np.isfinite(hi)
        if whisker.any():
            mid, half = (lo[whisker] + hi[whisker]) / 2, (hi[whisker] - lo[whisker]) / 2
            ax.errorbar(xs[whisker], mid, yerr=half, fmt="none", ecolor=WHISKER, elinewidth=0.9, capsize=2.5)
    ends = np.concatenate([a.ravel() for a in (chart.values, chart.low, chart.high) if a is not None])
    ends = ends[np.isfinite(ends)]
    ax.set_ylim(min(0.0, ends.min(initial=0.0)), max(1.0, ends.max(initial=1.0)) + 0.03)
    ax.set_xticks(x, chart.categories, rotation=35, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.6, len(chart.categories) - 0.4)
    ax.set_ylabel(chart.ylabel)
    ax.set_title(chart.title, loc="left")
    ax.yaxis.grid(True, color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def figure(charts: Sequence[BarChart], title: str | None = None) -> Figure:
    """One panel per chart, stacked, with one legend for the series (the charts share them)."""
    with matplotlib.rc_context(_RC):
        widest = max(len(c.categories) * max(len(c.series), 1) for c in charts)
        longest = max(len(label) for c in charts for label in c.categories)
        width = min(max(6.5, 2.5 + 0.13 * widest + 0.04 * longest), 40.0)
        height = len(charts) * (3.2 + 0.06 * longest) + (0.4 if title else 0.0)
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(charts), 1, squeeze=False)[:, 0]
        for ax, chart in zip(axes, charts, strict=True):
            draw_bars(ax, chart)
        series = charts[0].series
        handles = [Patch(color=PALETTE[s % len(PALETTE)], label=name) for s, name in enumerate(series)]
        fig.legend(handles=handles, loc="outside right upper", frameon=False)
        if title:
            fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    return fig


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``<stem>.svg`` and ``<stem>.png`` atomically; the paths."""
    stem = Path(stem)
    written = []
    for fmt in FORMATS:
        buf = io.BytesIO()
        with matplotlib.rc_context(_RC):
            if fmt == "svg":
                fig.savefig(buf, format="svg", metadata={"Date": None})
            else:
                fig.savefig(buf, format="png", dpi=130)
        path = stem.with_name(f"{stem.name}.{fmt}")
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)
    return written


def write_plots(frame: Any, folder: str | Path) -> list[Path]:
    """Write ``tasks_<track>`` and ``domains_<track>`` charts as ``.svg`` and ``.png`` into ``folder``.

    ``frame`` is a results table: a leaderboard long frame or the frame of :func:`xbench.pipeline.run.evaluate`.
    """
    table = complete(frame)
    folder = Path(folder)
    written = []
    for track in track_order(table):
        written += save_figure(figure([task_chart(table, track)]), folder / f"tasks_{track}")
        written += save_figure(figure([domain_chart(table, track)]), folder / f"domains_{track}")
    return written


def write_overview(frame: Any, stem: str | Path, title: str | None = None) -> list[Path]:
    """The demo's chart: per-task bars with intervals and each encoder's weighted average, one panel per track."""
    table = complete(frame)
    charts = [task_chart(table, track, with_average=True) for track in track_order(table)]
    return save_figure(figure(charts, title), stem)


__all__ = [
    "BarChart",
    "domain_chart",
    "draw_bars",
    "figure",
    "save_figure",
    "task_chart",
    "write_overview",
    "write_plots",
]
