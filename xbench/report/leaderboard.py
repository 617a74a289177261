"""``xbench leaderboard``: merge runs into X-ARES's README layout, plus a long CSV and the averages.

Inputs are result folders (``<output>``, ``<output>/<encoder>`` or ``<output>/<encoder>/<protocol>``,
searched for per-task result JSONs), ``summary.json`` files, single result JSONs, or long CSVs (X-ARES's
published table ``xbench/report/data/xares_published.csv``, a previous ``*-long.csv``, or a run's
``summary.csv``). The merge refuses to mix protocols, ``--lite`` runs with full runs (or lite runs of
different sizes), duplicate (encoder, task, track) rows, and tasks whose weight or version differ between
inputs. Averages come from :func:`xbench.scoring.scores.aggregate` (public = not private).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pandas as pd

from xbench.core.atomic_io import atomic_write_bytes
from xbench.core.enums import PublishedTable, choice
from xbench.scoring.record import TABLE_COLUMNS, RecordFormatError, read_records
from xbench.scoring.table import TRACK_TITLES, averages, complete, encoders, table, task_order, track_order

LONG_COLUMNS = TABLE_COLUMNS
AVERAGE_ROWS = (("public", "Weighted average (public)"), ("all", "Weighted average (all)"))
# package data, so it is there in an installed wheel too; its source note is xares_published.md beside it
PUBLISHED_CSV = resources.files("xbench.report.data") / "xares_published.csv"


class LeaderboardError(ValueError):
    """Inputs that cannot be merged into one leaderboard."""


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def _from_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, keep_default_na=True)
    have = set(frame.columns) | ({"score"} if "normalised" in frame.columns else set())
    missing = {"encoder", "task", "track", "score", "weight"} - have
    if missing:
        raise LeaderboardError(f"{path}: not a long results CSV (missing columns {sorted(missing)})")
    return complete(frame)


def _from_json_files(paths: Sequence[Path]) -> pd.DataFrame:
    try:
        return table(record for path in paths for record in read_records(path))
    except RecordFormatError as exc:
        raise LeaderboardError(str(exc)) from exc


def load_results(source: str | Path) -> pd.DataFrame:
    """A long frame (:data:`LONG_COLUMNS`) from a results folder, ``summary.json``, result JSON or long CSV.

    ``NAME=PATH`` renames the (single) encoder found in ``PATH`` to ``NAME``.
    """
    text = str(source)
    name = None
    if "=" in text and not Path(text).exists():
        name, text = text.split("=", 1)
    path = Path(text)
    if not path.exists():
        raise LeaderboardError(f"{path}: no such results file or folder")
    if path.is_dir():
        frame = _from_json_files(sorted(p for p in path.rglob("*.json") if p.name != "summary.json"))
        if frame.empty:
            frame = _from_json_files(sorted(path.rglob("summary.json")))
    elif path.suffix == ".csv":
        frame = _from_csv(path)
    else:
        frame = _from_json_files([path])
    if frame.empty:
        raise LeaderboardError(f"{path}: holds no xbench results")
    if name is not None:
        if frame.encoder.nunique() > 1:
            raise LeaderboardError(f"{name}={path}: cannot rename, it holds {frame.encoder.nunique()} encoders")
        frame["encoder"] = name
    return frame


# --------------------------------------------------------------------------------------------------
# Merging and averaging
# --------------------------------------------------------------------------------------------------


def merge(frames: Sequence[pd.DataFrame], protocol: str | None = None, common_tasks: bool = False) -> pd.DataFrame:
    """Concatenate long frames after checking they can share one leaderboard.

    ``protocol`` keeps only rows of that protocol; ``common_tasks`` keeps only the (task, track)
    pairs that every encoder has, so that the averages cover the same tasks.
    """
    if not frames:
        raise LeaderboardError("no results given")
    long = pd.concat(frames, ignore_index=True)
    if protocol is not None:
        long = long[long.protocol == protocol]
        if long.empty:
            raise LeaderboardError(f"no results under protocol {protocol!r}")
    protocols = sorted(long.protocol.unique())
    if len(protocols) > 1:
        who = "; ".join(f"{p}: {', '.join(sorted(long[long.protocol == p].encoder.unique()))}" for p in protocols)
        raise LeaderboardError(
            f"refusing to merge results of different protocols ({who}). Scores are only comparable under "
            "one protocol: rerun with `xbench run --protocol ...`, or pick one with --protocol"
        )
    if long.lite.nunique() > 1:
        who = "; ".join(
            f"{'full' if n == 0 else f'lite {n}'}: {', '.join(sorted(long[long.lite == n].encoder.unique()))}"
            for n in sorted(long.lite.unique())
        )
        raise LeaderboardError(
            f"refusing to merge --lite runs with full runs or other lite sizes ({who}): a subset's scores are not "
            "comparable with the full task's; pass the lite-N folder or the full run's folders alone"
        )
    dup = long[long.duplicated(["encoder", "task", "track"], keep=False)]
    if not dup.empty:
        pairs = sorted({f"{r.encoder}/{r.task}/{r.track}" for r in dup.itertuples()})
        raise LeaderboardError(f"the same (encoder, task, track) comes from several inputs: {', '.join(pairs[:8])}")
    for col in ("weight", "task_version", "private"):
        varying = long.groupby("task")[col].nunique()
        if (varying > 1).any():
            bad = ", ".join(varying[varying > 1].index)
            raise LeaderboardError(f"task(s) {bad}: {col} differs between inputs; their scores are not comparable")
    if common_tasks:
        counts = long.groupby(["task", "track"]).encoder.transform("nunique")
        long = long[counts == long.encoder.nunique()]
    return long.reset_index(drop=True)


def wide(long: pd.DataFrame, avg: pd.DataFrame | None = None) -> pd.DataFrame:
    """The README layout: per track, one row per task then the public and all averages; one column per encoder."""
    avg = averages(long) if avg is None else avg
    names = long.drop_duplicates("task").set_index("task")
    columns = encoders(long)
    rows = []
    for track in track_order(long):
        part = long[long.track == track]
        for task in [t for t in task_order(long) if t in set(part.task)]:
            cells = part[part.task == task].set_index("encoder").score
            rows.append(
                {
                    "track": track,
                    "task": task,
                    "formal_name": names.loc[task, "formal_name"],
                    "private": bool(names.loc[task, "private"]),
                    **{e: cells.get(e, float("nan")) for e in columns},
                }
            )
        for group, title in AVERAGE_ROWS:
            cells = avg[(avg.track == track) & (avg.group == group)].set_index("encoder").score
            rows.append(
                {
                    "track": track,
                    "task": f"average_{group}",
                    "formal_name": title,
                    "private": "",
                    **{e: cells.get(e, float("nan")) for e in columns},
                }
            )
    return pd.DataFrame(rows, columns=["track", "task", "formal_name", "private", *columns])


def markdown(board: pd.DataFrame, lite: int = 0) -> str:
    """X-ARES README tables (one per track) with three decimals; ``-`` where an encoder has no score. A board of
    ``--lite N`` results (``lite``) says so in every track's title."""
    encoders = [c for c in board.columns if c not in ("track", "task", "formal_name", "private")]
    subset = f" (lite {lite}: at most {lite} clips per split, not comparable with full runs)" if lite else ""
    out = []
    for track, part in board.groupby("track", sort=False):
        out.append(f"{TRACK_TITLES.get(track, track)} track{subset}:\n")
        out.append("| Task | " + " | ".join(encoders) + " |")
        out.append("|---|" + "---|" * len(encoders))
        for _, r in part.iterrows():
            label = str(r["formal_name"]) + (" (private)" if r["private"] is True else "")
            cells = ["-" if pd.isna(r[e]) else f"{r[e]:.3f}" for e in encoders]
            out.append("| " + label + " | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_leaderboard(long: pd.DataFrame, out: str | Path) -> dict[str, Path]:
    """Write ``out`` (README layout), ``<stem>-long.csv``, ``<stem>-averages.csv`` and ``<stem>.md``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    avg = averages(long)
    paths = {
        "board": out,
        "long": out.with_name(out.stem + "-long.csv"),
        "averages": out.with_name(out.stem + "-averages.csv"),
        "markdown": out.with_suffix(".md"),
    }
    board = wide(long, avg)
    for key, text in (
        ("board", board.to_csv(index=False)),
        ("long", long.to_csv(index=False)),
        ("averages", avg.to_csv(index=False)),
        ("markdown", markdown(board, lite=int(long.lite.max()) if "lite" in long and len(long) else 0)),
    ):
        atomic_write_bytes(paths[key], text.encode("utf-8"))
    return paths


def load_published(librispeech: str = "readme") -> pd.DataFrame:
    """X-ARES's published v0.1.x table (protocol ``xares``) as a long frame.

    ``librispeech="v0.1.3"`` swaps in the v0.1.3 LibriSpeech-100h MLP values noted in the table;
    the README's averages were computed with the older ones (``"readme"``).
    """
    with PUBLISHED_CSV.open("rb") as fh:
        raw = pd.read_csv(fh, keep_default_na=False, na_values=[""])
    if choice(PublishedTable, librispeech, "librispeech") == PublishedTable.V0_1_3:
        newer = raw.note.fillna("").str.extract(r"v0\.1\.3=([0-9.]+)")[0].astype(float)
        raw["raw"] = newer.where(newer.notna(), raw.raw)
        raw["normalised"] = newer.where(newer.notna(), raw.normalised)
    return complete(raw)


__all__ = [
    "LONG_COLUMNS",
    "LeaderboardError",
    "averages",
    "load_published",
    "load_results",
    "markdown",
    "merge",
    "wide",
    "write_leaderboard",
]
