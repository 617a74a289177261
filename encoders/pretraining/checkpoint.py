"""A stage's folder: atomic checkpoints every N steps, the pointer to the latest, resume checks.

Layout of a stage folder::

    checkpoints/step-000500/   the family's official layout (what the zoo wrapper loads) + state.pt
    latest.json                {"step": 500, "checkpoint": "checkpoints/step-000500"}
    init/                      the official layout of the weights before step 1 (a random baseline)
    final/                     the official layout after the last step (+ DONE)
    log.csv, loss.png          loss, learning rate and metrics per step (see :mod:`.progress`)

A checkpoint folder is written under a temporary name and renamed into place, then ``latest.json`` is
replaced atomically, so a run killed at any moment leaves the previous checkpoint intact. ``state.pt``
holds the trainer state (model, optimiser, scheduler, generator, every rank's RNG), the data stream's
position, the log rows so far and the recipe's fingerprint; :func:`load_state` refuses a file that is
unreadable or was written by another configuration, in one line naming the file.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from xbench.core.atomic_io import atomic_write_bytes, atomic_write_json

STATE_FILE = "state.pt"
LATEST = "latest.json"
DONE = "DONE"
FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed (missing, corrupt or mismatched); the message is one line naming the file."""


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`~xbench.core.atomic_io.atomic_write_bytes`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def write_folder(folder: Path, fill: Callable[[Path], None]) -> Path:
    """Create ``folder`` atomically: ``fill`` writes into a temporary sibling that is then renamed to it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        fill(tmp)
        if folder.exists():  # left by a run killed between this rename and the pointer update
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def save_checkpoint(
    stage_dir: Path, step: int, state: dict[str, Any], write_official: Callable[[Path], None], keep: int
) -> Path:
    """Write checkpoint ``step`` (official layout + ``state.pt``), point ``latest.json`` at it, prune old ones."""

    def fill(tmp: Path) -> None:
        write_official(tmp)
        save_torch({"format": FORMAT, **state}, tmp / STATE_FILE)

    folder = write_folder(stage_dir / "checkpoints" / checkpoint_name(step), fill)
    atomic_write_json(stage_dir / LATEST, {"step": step, "checkpoint": str(folder.relative_to(stage_dir))})
    kept = sorted(p for p in (stage_dir / "checkpoints").glob("step-*") if p.is_dir())
    for old in kept[: max(0, len(kept) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The state file ``latest.json`` points to, or None when the stage has no checkpoint yet."""
    pointer = stage_dir / LATEST
    if not pointer.is_file():
        return None
    try:
        folder = stage_dir / json.loads(pointer.read_text())["checkpoint"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint pointer {pointer} is corrupt ({type(exc).__name__})") from exc
    return folder / STATE_FILE


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:300]


def _differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(saved) | set(current), key=str):
            out += _differences(saved.get(key), current.get(key), f"{prefix}{key}.")
        return out
    return [] if saved == current else [f"{prefix.rstrip('.')} ({saved!r} there, {current!r} here)"]


def resolve_resume(path: str | Path) -> Path:
    """The state file of ``--resume PATH``: a ``state.pt``, a checkpoint folder, or a stage folder (its latest)."""
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / STATE_FILE).is_file():
            return path / STATE_FILE
        latest = latest_checkpoint(path)
        if latest is not None:
            return latest
        raise CheckpointError(f"{path}: no {STATE_FILE} and no {LATEST} inside; not a checkpoint")
    return path


def load_state(path: Path, fingerprint: dict[str, Any], stage: str, world_size: int) -> dict[str, Any]:
    """Load and check a ``state.pt``: readable, this format, this stage, this configuration, this world size."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a truncated or foreign file
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint: {_one_line(exc)}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT or "trainer" not in state:
        raise CheckpointError(f"checkpoint {path} is not an xbench pretraining state (format {FORMAT})")
    if state.get("stage") != stage:
        raise CheckpointError(f"checkpoint {path} belongs to stage {state.get('stage')!r}, not {stage!r}")
    diffs = _differences(state.get("fingerprint"), json.loads(json.dumps(fingerprint)))
    if diffs:
        more = f" and {len(diffs) - 1} more" if len(diffs) > 1 else ""
        raise CheckpointError(f"checkpoint {path} was written by another configuration: {diffs[0]}{more}")
    if state.get("world_size") != world_size:
        raise CheckpointError(
            f"checkpoint {path} was written by {state.get('world_size')} processes, this run has {world_size}"
        )
    return state


def mark_done(folder: Path) -> None:
    atomic_write_bytes(folder / DONE, b"")


def is_done(folder: Path) -> bool:
    return (folder / DONE).is_file()
