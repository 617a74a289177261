"""A dependency-free bar chart: numpy canvas, a built-in 5x7 bitmap font, and a zlib PNG writer.

matplotlib is not an xbench dependency; this draws the demo's score chart without it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# 5x7 glyphs, one 5-bit row per number (bit 4 = leftmost pixel).
_GLYPHS: dict[str, tuple[int, ...]] = {
    "A": (0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11), "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E), "D": (0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F), "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F), "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E), "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11), "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11), "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D), "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E), "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A), "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04), "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E), "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F), "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02), "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E), "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E), "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    " ": (0, 0, 0, 0, 0, 0, 0), ".": (0, 0, 0, 0, 0, 0x0C, 0x0C), "-": (0, 0, 0, 0x1F, 0, 0, 0),
    "_": (0, 0, 0, 0, 0, 0, 0x1F), ":": (0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02),
    ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08), "/": (0, 0x01, 0x02, 0x04, 0x08, 0x10, 0),
    ",": (0, 0, 0, 0, 0x0C, 0x04, 0x08), "+": (0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0), "=": (0, 0, 0x1F, 0, 0x1F, 0, 0),
    "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03),
}  # fmt: skip
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))
INK, GRID, WHITE = (30, 30, 30), (220, 220, 220), (255, 255, 255)


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an ``[H, W, 3]`` uint8 image as an 8-bit RGB PNG (no filter, zlib level 9)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def text_width(text: str, scale: int = 1) -> int:
    return len(text) * 6 * scale


def draw_text(img: np.ndarray, x: int, y: int, text: str, color: tuple[int, int, int] = INK, scale: int = 1) -> None:
    """Draw ``text`` (upper-cased; unknown characters as blanks) with its top-left corner at (x, y)."""
    for i, char in enumerate(text.upper()):
        rows = _GLYPHS.get(char, _GLYPHS[" "])
        for r, bits in enumerate(rows):
            for c in range(5):
                if bits & (1 << (4 - c)):
                    y0, x0 = y + r * scale, x + (i * 6 + c) * scale
                    img[max(y0, 0) : max(y0 + scale, 0), max(x0, 0) : max(x0 + scale, 0)] = color


def bar_chart(
    path: str | Path,
    title: str,
    groups: Sequence[str],
    series: Sequence[str],
    panels: Sequence[tuple[str, np.ndarray]],
) -> None:
    """Grouped bars in [0, 1]: one panel per ``(name, values [len(series), len(groups)])`` (NaN = no bar)."""
    bar_w, gap = 14, 26
    group_w = max(len(series) * bar_w + gap, max(text_width(g) for g in groups) + 10)
    left, top, plot_h, panel_gap = 50, 40, 200, 60
    legend_h = 20 * len(series) + 10
    width = max(left + group_w * len(groups) + 20, left + text_width(title, 2) + 20)
    height = top + len(panels) * (plot_h + panel_gap) + legend_h
    img = np.full((height, width, 3), WHITE, dtype=np.uint8)
    draw_text(img, left, 10, title, scale=2)
    for p, (name, values) in enumerate(panels):
        y0 = top + p * (plot_h + panel_gap) + 20
        draw_text(img, left, y0 - 16, name)
        for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
            y = y0 + int(round((1 - tick) * plot_h))
            img[y, left : width - 20] = GRID if tick > 0 else INK
            draw_text(img, 8, y - 3, f"{tick:.2f}")
        for g, group in enumerate(groups):
            gx = left + g * group_w + (group_w - len(series) * bar_w) // 2
            for s in range(len(series)):
                value = float(values[s, g])
                if value != value:  # NaN: this track has no score for the task
                    continue
                h = int(round(min(max(value, 0.0), 1.0) * plot_h))
                x = gx + s * bar_w
                img[y0 + plot_h - h : y0 + plot_h, x : x + bar_w - 2] = PALETTE[s % len(PALETTE)]
            cx = left + g * group_w + (group_w - text_width(group)) // 2
            draw_text(img, cx, y0 + plot_h + 6, group)
    ly = height - legend_h + 5
    for s, name in enumerate(series):
        img[ly + 20 * s : ly + 20 * s + 10, left : left + 10] = PALETTE[s % len(PALETTE)]
        draw_text(img, left + 16, ly + 20 * s + 2, name)
    write_png(path, img)
