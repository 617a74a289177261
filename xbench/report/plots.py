"""Leaderboard plots without matplotlib: per-task grouped bars and a per-domain summary, as SVG and PNG.

One layout function draws each chart through a small painter interface; :class:`SvgPainter` writes
SVG elements and :class:`PngPainter` rasterises the same shapes into a numpy canvas (rectangles,
axis-aligned lines, and text in a built-in 5x7 bitmap font, upper case only), encoded as PNG with
zlib. Scores are the 0–1 normalised scores; error bars show the 95 % interval where one is known.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from xbench.core.atomic_io import atomic_write_bytes

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
AXIS, GRID, INK, WHISKER = "#333333", "#dddddd", "#222222", "#444444"

# 5x7 glyphs: seven rows of five bits (bit 4 = leftmost column), as hex pairs.
# fmt: off
_FONT_HEX = {
    " ": "00000000000000", "0": "0E11131519110E", "1": "040C040404040E",
    "2": "0E11010204081F", "3": "1F02040201110E", "4": "02060A121F0202",
    "5": "1F101E0101110E", "6": "0608101E11110E", "7": "1F010204080808",
    "8": "0E11110E11110E", "9": "0E11110F01020C", "A": "0E11111F111111", "B": "1E11111E11111E",
    "C": "0E11101010110E", "D": "1C12111111121C", "E": "1F10101E10101F",
    "F": "1F10101E101010", "G": "0E11101711110F", "H": "1111111F111111",
    "I": "0E04040404040E", "J": "0702020202120C", "K": "11121418141211",
    "L": "1010101010101F", "M": "111B1515111111", "N": "11111915131111", "O": "0E11111111110E",
    "P": "1E11111E101010", "Q": "0E11111115120D", "R": "1E11111E141211",
    "S": "0F10100E01011E", "T": "1F040404040404", "U": "1111111111110E", "V": "11111111110A04",
    "W": "1111111515150A", "X": "11110A040A1111", "Y": "1111110A040404", "Z": "1F01020408101F",
    "-": "0000001F000000", ".": "00000000000C0C", ",": "000000000C0408", "/": "00010204081000",
    "(": "02040808080402", ")": "08040202020408", "_": "0000000000001F", ":": "000C0C000C0C00",
    "%": "18190204081303", "+": "0004041F040400", "=": "00001F001F0000", "@": "0E11010D15150E",
    "?": "0E110102040004", "[": "0E08080808080E", "]": "0E02020202020E", "#": "0A0A1F0A1F0A0A",
    "&": "0C12140815120D", "'": "04040800000000", "*": "0004150E150400", "<": "02040810080402",
    ">": "08040201020408",
}
# fmt: on
_GLYPHS = {
    ch: np.array([[(row >> (4 - c)) & 1 for c in range(5)] for row in bytes.fromhex(code)], dtype=bool)
    for ch, code in _FONT_HEX.items()
}


# --------------------------------------------------------------------------------------------------
# Painters
# --------------------------------------------------------------------------------------------------


class SvgPainter:
    """Collects SVG elements; :meth:`finish` returns the document."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.parts: list[str] = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: str, title: str = "") -> None:
        tip = f"<title>{escape(title)}</title>" if title else ""
        self.parts.append(
            f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{max(0.0, x1 - x0):.1f}" height="{max(0.0, y1 - y0):.1f}" '
            f'fill="{color}">{tip}</rect>'
        )

    def line(self, x0: float, y0: float, x1: float, y1: float, color: str, width: float = 1.0) -> None:
        self.parts.append(
            f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="{color}" stroke-width="{width}"/>'
        )

    def text(self, x: float, y: float, s: str, size: float = 11, anchor: str = "start", vertical: bool = False) -> None:
        """Text with its baseline at ``y`` (or, ``vertical``, reading upwards and ending at ``(x, y)``)."""
        turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if vertical else ""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-family="DejaVu Sans, Arial, sans-serif" font-size="{size}" '
            f'fill="{INK}" text-anchor="{anchor}"{turn}>{escape(s)}</text>'
        )

    def finish(self) -> str:
        body = "\n".join(self.parts)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
            f'viewBox="0 0 {self.width} {self.height}">\n{body}\n</svg>\n'
        )


def _rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def text_bitmap(s: str, scale: int = 1) -> np.ndarray:
    """``[7·scale, 6·len·scale − scale]`` boolean bitmap of ``s`` in the 5x7 font (upper-cased)."""
    if not s:
        return np.zeros((7 * scale, 0), dtype=bool)
    cols = []
    for ch in s.upper():
        cols.append(_GLYPHS.get(ch, _GLYPHS["?"]))
        cols.append(np.zeros((7, 1), dtype=bool))
    bitmap = np.concatenate(cols[:-1], axis=1)
    return np.kron(bitmap, np.ones((scale, scale), dtype=bool)).astype(bool)


class PngPainter:
    """Rasterises the painter calls into an RGB canvas; :meth:`finish` returns PNG bytes."""

    def __init__(self, width: int, height: int) -> None:
        self.canvas = np.full((height, width, 3), 255, dtype=np.uint8)

    def _fill(self, x0: float, y0: float, x1: float, y1: float, color: str) -> None:
        h, w = self.canvas.shape[:2]
        xa, xb = sorted((int(round(x0)), int(round(x1))))
        ya, yb = sorted((int(round(y0)), int(round(y1))))
        xa, xb, ya, yb = max(xa, 0), min(xb, w), max(ya, 0), min(yb, h)
        if xa < xb and ya < yb:
            self.canvas[ya:yb, xa:xb] = _rgb(color)

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: str, title: str = "") -> None:
        self._fill(x0, y0, x1, y1, color)

    def line(self, x0: float, y0: float, x1: float, y1: float, color: str, width: float = 1.0) -> None:
        """Axis-aligned lines only (all the charts need)."""
        half = max(1.0, width) / 2
        if abs(x0 - x1) < abs(y0 - y1):
            self._fill(x0 - half, min(y0, y1), x0 + half, max(y0, y1) + 1, color)
        else:
            self._fill(min(x0, x1), y0 - half, max(x0, x1) + 1, y0 + half, color)

    def text(self, x: float, y: float, s: str, size: float = 11, anchor: str = "start", vertical: bool = False) -> None:
        scale = max(1, int(round(size / 9)))
        bitmap = text_bitmap(s, scale)
        if vertical:
            bitmap = np.rot90(bitmap)  # reads upwards; the text's end is now at the top
            top = int(round(y)) if anchor == "end" else int(round(y)) - bitmap.shape[0]
            left = int(round(x)) - bitmap.shape[1] // 2
        else:
            width = bitmap.shape[1]
            shift = {"start": 0, "middle": width // 2, "end": width}[anchor]
            top, left = int(round(y)) - bitmap.shape[0], int(round(x)) - shift
        self._blit(bitmap, top, left)

    def _blit(self, bitmap: np.ndarray, top: int, left: int) -> None:
        h, w = self.canvas.shape[:2]
        bh, bw = bitmap.shape
        ya, yb, xa, xb = max(top, 0), min(top + bh, h), max(left, 0), min(left + bw, w)
        if ya >= yb or xa >= xb:
            return
        mask = bitmap[ya - top : yb - top, xa - left : xb - left]
        self.canvas[ya:yb, xa:xb][mask] = _rgb(INK)

    def finish(self) -> bytes:
        return encode_png(self.canvas)


def encode_png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of ``rgb [H, W, 3]`` (filter 0 on every row, one zlib IDAT chunk)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), dtype=np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------------


@dataclass
class BarChart:
    """Grouped bars: ``values[s, c]`` for series ``s`` (encoders) in category ``c`` (tasks or groups)."""

    title: str
    categories: list[str]
    series: list[str]
    values: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    ylabel: str = "normalised score"


def draw(chart: BarChart, painter_cls: type[Any]) -> Any:
    """Lay ``chart`` out and paint it with ``painter_cls`` (:class:`SvgPainter` or :class:`PngPainter`)."""
    n_series, n_cat = len(chart.series), len(chart.categories)
    bar = 12 if n_series <= 4 else 8
    group = n_series * bar + 14
    left, right, top = 56, 20, 48 + 16 * ((n_series + 3) // 4)
    label_room = 12 + 6 * max([len(c) for c in chart.categories] + [4])
    plot_h = 260
    width = max(left + right + n_cat * group, 420)
    height = top + plot_h + label_room
    p = painter_cls(width, height)
    p.text(left, 22, chart.title, size=16)
    for i, name in enumerate(chart.series):  # legend, four entries per line
        lx, ly = left + (i % 4) * min(200, (width - left - right) // 4), 36 + 16 * (i // 4)
        p.rect(lx, ly, lx + 10, ly + 10, PALETTE[i % len(PALETTE)])
        p.text(lx + 14, ly + 9, name, size=10)
    y_of = lambda v: top + plot_h * (1.0 - float(np.clip(v, 0.0, 1.0)))  # noqa: E731
    for tick in np.linspace(0.0, 1.0, 6):
        y = y_of(tick)
        p.line(left, y, width - right, y, GRID)
        p.text(left - 6, y + 4, f"{tick:.1f}", size=10, anchor="end")
    p.text(14, top + plot_h / 2, chart.ylabel, size=10, anchor="middle", vertical=True)
    for c, category in enumerate(chart.categories):
        gx = left + c * group + 7
        for s in range(n_series):
            v = chart.values[s, c]
            if not np.isfinite(v):
                continue
            x0 = gx + s * bar
            p.rect(x0, y_of(v), x0 + bar - 1, y_of(0.0), PALETTE[s % len(PALETTE)], f"{chart.series[s]}: {v:.3f}")
            if chart.low is not None and chart.high is not None and np.isfinite(chart.low[s, c]):
                xm, lo, hi = x0 + (bar - 1) / 2, y_of(chart.low[s, c]), y_of(chart.high[s, c])
                p.line(xm, lo, xm, hi, WHISKER)
                p.line(xm - 2, lo, xm + 2, lo, WHISKER)
                p.line(xm - 2, hi, xm + 2, hi, WHISKER)
        p.text(gx + (n_series * bar) / 2 + 4, top + plot_h + 8, category, size=10, anchor="end", vertical=True)
    p.line(left, top, left, top + plot_h, AXIS)
    p.line(left, top + plot_h, width - right, top + plot_h, AXIS)
    return p.finish()


def _long(frame: Any) -> Any:
    """A leaderboard long frame from a long frame or an :func:`xbench.pipeline.run.evaluate` frame."""
    from xbench.report.leaderboard import _complete

    if "normalised" not in frame.columns and "score" in frame.columns:
        frame = frame.rename(columns={"score": "normalised"})
    return _complete(frame)


def task_chart(long: Any, track: str) -> BarChart:
    """Per-task grouped bars of one track (X-ARES task order), with 95 % intervals."""
    from xbench.report.leaderboard import _task_order

    part = long[long.track == track]
    encoders = list(dict.fromkeys(long.encoder))
    tasks = [t for t in _task_order(long) if t in set(part.task)]
    names = part.drop_duplicates("task").set_index("task").formal_name
    shape = (len(encoders), len(tasks))
    values, low, high = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for r in part.itertuples():
        s, c = encoders.index(r.encoder), tasks.index(r.task)
        values[s, c], low[s, c], high[s, c] = r.normalised, r.ci_low, r.ci_high
    title = f"{track.upper() if track == 'mlp' else track} track: per-task scores"
    return BarChart(title, [str(names[t]) for t in tasks], encoders, values, low, high)


def domain_chart(long: Any, track: str) -> BarChart:
    """Weighted averages per domain, then public and all, of one track (:func:`xbench.scoring.scores.aggregate`)."""
    from xbench.report.leaderboard import averages

    avg = averages(long)
    avg = avg[avg.track == track]
    encoders = list(dict.fromkeys(long.encoder))
    domains = sorted(set(avg.group) - {"all", "public", "private"})
    groups = domains + [g for g in ("public", "private", "all") if g in set(avg.group)]
    values = np.full((len(encoders), len(groups)), np.nan)
    for r in avg.itertuples():
        if r.group in groups:
            values[encoders.index(r.encoder), groups.index(r.group)] = r.score
    title = f"{track.upper() if track == 'mlp' else track} track: weighted averages"
    return BarChart(title, groups, encoders, values, ylabel="weighted average")


def write_plots(frame: Any, folder: str | Path) -> list[Path]:
    """Write ``tasks_<track>`` and ``domains_<track>`` charts as ``.svg`` and ``.png`` into ``folder``.

    ``frame`` is a leaderboard long frame or the frame returned by :func:`xbench.pipeline.run.evaluate`.
    """
    long = _long(frame)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for track in [t for t in ("mlp", "knn") if t in set(long.track)] + sorted(set(long.track) - {"mlp", "knn"}):
        for stem, chart in (
            (f"tasks_{track}", task_chart(long, track)),
            (f"domains_{track}", domain_chart(long, track)),
        ):
            svg, png = folder / f"{stem}.svg", folder / f"{stem}.png"
            atomic_write_bytes(svg, draw(chart, SvgPainter).encode("utf-8"))
            atomic_write_bytes(png, draw(chart, PngPainter))
            written += [svg, png]
    return written


__all__ = ["BarChart", "PngPainter", "SvgPainter", "draw", "encode_png", "text_bitmap", "write_plots"]
