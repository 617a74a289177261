"""The training log of a stage: one CSV row per optimiser step and a matplotlib curve of loss and learning rate
(drawn with the report stage's figure writer).

Rows are kept in memory; the CSV is rewritten atomically at every checkpoint and at the end, so it
always describes exactly the steps a resumed run continues from. The curve is redrawn at the end and
at checkpoints at least :data:`PLOT_EVERY_SECONDS` apart (drawing it costs about a second).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xbench.core.atomic_io import atomic_write_bytes
from xbench.encoders.training import StepRecord

BASE_COLUMNS = ("step", "loss", "lr", "seconds")
PLOT_EVERY_SECONDS = 120.0


def record_row(record: StepRecord) -> dict[str, Any]:
    """A CSV row of one step: step, loss, lr, seconds, then the recipe's metrics by name."""
    return {"step": record.step, "loss": record.loss, "lr": record.lr, "seconds": record.seconds, **record.metrics}


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (columns: :data:`BASE_COLUMNS`, then metric names in order of appearance)."""
    columns = list(BASE_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_bytes(path, out.getvalue().encode())


def plot_curve(stem: Path, rows: Sequence[dict[str, Any]], title: str) -> list[Path]:
    """Loss (raw and a moving average) and learning rate against step: ``<stem>.svg`` and ``<stem>.png``."""
    from matplotlib.figure import Figure

    from xbench.report.plots import save_figure

    steps = [int(r["step"]) for r in rows]
    losses = [float(r["loss"]) for r in rows]
    window = max(1, min(50, len(rows) // 20))
    smooth, acc, norm = [], 0.0, 0.0
    for loss in losses:  # exponential moving average, bias-corrected (no lag at the start)
        acc, norm = acc * (1 - 1 / window) + loss, norm * (1 - 1 / window) + 1
        smooth.append(acc / norm)
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    ax.plot(steps, losses, color="#4e79a7", alpha=0.3, linewidth=0.8, label="loss")
    ax.plot(steps, smooth, color="#4e79a7", linewidth=1.5, label=f"loss ({window}-step moving average)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if losses and min(losses) > 0 and max(losses) / min(losses) > 20 and all(math.isfinite(x) for x in losses):
        ax.set_yscale("log")
    lr_ax = ax.twinx()
    lr_ax.plot(steps, [float(r["lr"]) for r in rows], color="#f28e2b", linewidth=1.0, label="learning rate")
    lr_ax.set_ylabel("learning rate")
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = lr_ax.get_legend_handles_labels()
    ax.legend(handles + more_handles, labels + more_labels, loc="upper right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, stem)


def write_log(stage_dir: Path, rows: Sequence[dict[str, Any]], title: str, plot: bool = True) -> None:
    """``log.csv`` and (when ``plot``) ``loss.svg`` / ``loss.png`` of a stage."""
    write_csv(stage_dir / "log.csv", rows)
    if rows and plot:
        plot_curve(stage_dir / "loss", rows, title)
