"""Build the offline suite: five pools of generated audio shards plus seven task declarations.

Layout of a built suite (default ``<data root>/suites/offline``, ``--small``: ``.../offline-small``)::

    tasks/_suite.json            manifest: suite name, size, sources used (SoundFont sha256s), clip counts
    tasks/offline_<task>.json    TaskConfig.to_dict() dumps, data_dir relative ("../data/<pool>")
    data/<pool>/{train,valid,test}-NNNNNN.tar   X-ARES-format shards (FLAC + json)

The loader skips ``_suite.json`` (a leading underscore), so ``tasks/`` is a plain ``--tasks-dir``; the
manifest is the folder's suite tag. Everything is seeded per clip: rebuilding gives byte-identical files.

Without root, flite, festival and the Debian SoundFonts are missing. ``partial=True`` (``--partial``)
then builds each pool that lacks a source in its PyPI-only variant, from espeak-ng (espeakng-loader) or
TimGM6mb (pretty-midi) alone, under ``data/<pool>_pypi`` with task names ending in ``_pypi``: all seven
tasks, with different data, so their scores are never mixed up with the full tasks'.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from xbench._version import __version__
from xbench.core.atomic_io import atomic_write_json
from xbench.core.paths import data_root
from xbench.suites.offline import SUITE, music, speech
from xbench.suites.offline.common import Item, PoolResult, write_declaration, write_pool
from xbench.suites.offline.sources import Sources, detect_sources, install_hint
from xbench.taskspec.config import TaskConfig
from xbench.taskspec.registry import load_task_file

MANIFEST = "_suite.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PoolDef:
    """A pool: the sources it needs, its builder and its task declarations."""

    name: str
    requires: tuple[str, ...]
    pypi_requires: tuple[str, ...]
    build: Callable[[Sources, bool], list[Item]]
    declare: Callable[[PoolResult], list[TaskConfig]]


_TTS = ("espeak", "flite", "festival")
_FONTS = ("timgm6mb", "fluidr3", "musescore")
PYPI_SUFFIX = "_pypi"
POOLS: tuple[PoolDef, ...] = (
    PoolDef("keywords", _TTS, ("espeak",), speech.build_keywords, speech.declare_keywords),
    PoolDef("speech", _TTS, ("espeak",), speech.build_speech, speech.declare_speech),
    PoolDef("notes", _FONTS, ("timgm6mb",), music.build_notes, music.declare_notes),
    PoolDef("melodies", _FONTS, ("timgm6mb",), music.build_melodies, music.declare_melodies),
    PoolDef("mixtures", _FONTS, ("timgm6mb",), music.build_mixtures, music.declare_mixtures),
)
TASK_POOLS = {
    "offline_keywords": "keywords",
    "offline_language": "speech",
    "offline_gender": "speech",
    "offline_instrument": "notes",
    "offline_pitch": "notes",
    "offline_melody_notes": "melodies",
    "offline_instrument_mix": "mixtures",
}


class SuiteError(RuntimeError):
    """The suite cannot be built or found; the message says what to do."""


def default_suite_dir(name: str = SUITE, small: bool = False, root: str | Path | None = None) -> Path:
    """``<data root>/suites/<name>`` (``<name>-small`` for the small size)."""
    return data_root(root) / "suites" / (f"{name}-small" if small else name)


def task_pool(task_name: str) -> str:
    """The pool folder name of a suite task (``_pypi`` variants included)."""
    if task_name.endswith(PYPI_SUFFIX):
        return TASK_POOLS[task_name.removesuffix(PYPI_SUFFIX)] + PYPI_SUFFIX
    return TASK_POOLS[task_name]


def pypi_sources(sources: Sources) -> Sources:
    """``sources`` restricted to what PyPI provides (espeak-ng and TimGM6mb), so a variant's data never
    depends on which Debian packages happen to be present."""
    fonts = {k: v for k, v in sources.soundfonts.items() if k == "timgm6mb"}
    return Sources(espeak=sources.espeak, flite=(), festival=(), soundfonts=fonts)


def _build_pool(pool: PoolDef, sources: Sources, small: bool, folder: str) -> tuple[dict[str, str], dict[str, int]]:
    items = pool.build(sources, small)
    return write_pool(Path(folder), items)


def build_suite(
    out: str | Path | None = None,
    *,
    small: bool = False,
    partial: bool = False,
    jobs: int = 1,
    sources: Sources | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Build the offline suite into ``out`` (default :func:`default_suite_dir`); returns its ``tasks/`` folder.

    With a source missing, raises :class:`SuiteError` naming the packages to install, unless ``partial``:
    then a pool that lacks a source is built in its PyPI-only variant if it can be, else left out (both
    are listed in the manifest).
    """
    out = Path(out) if out is not None else default_suite_dir(small=small)
    sources = sources or detect_sources()
    todo: list[tuple[PoolDef, Sources, str]] = []
    skipped, variants = {}, {}
    for pool in POOLS:
        missing = [s for s in pool.requires if not sources.has(s)]
        if not missing:
            todo.append((pool, sources, ""))
            variants[pool.name] = "full"
            continue
        skipped[pool.name] = missing
        if partial and all(sources.has(s) for s in pool.pypi_requires):
            todo.append((pool, pypi_sources(sources), PYPI_SUFFIX))
            variants[pool.name] = "pypi"
            log(f"[suite] pool {pool.name}: {missing} missing, building its PyPI-only variant ({pool.name}_pypi)")
        elif partial:
            log(f"[suite] pool {pool.name}: {missing} missing, left out ({install_hint(missing)})")
    if skipped and not partial:
        missing = sorted({m for ms in skipped.values() for m in ms})
        raise SuiteError(
            f"offline suite: missing sources {missing} (pools {sorted(skipped)}); install them: "
            f"{install_hint(missing)}; or pass --partial to build their PyPI-only variants (task names *_pypi)"
        )
    if not todo:
        raise SuiteError("offline suite: no pool has all its sources; " + install_hint(sorted(set(_TTS + _FONTS))))
    tasks_dir, data_dir = out / "tasks", out / "data"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    for old in list(tasks_dir.glob("offline_*.json")) + [tasks_dir / MANIFEST]:
        old.unlink(missing_ok=True)
    started = time.perf_counter()
    results: dict[str, tuple[dict[str, str], dict[str, int]]] = {}
    for old in data_dir.glob("*") if data_dir.is_dir() else []:
        if old.is_dir() and old.name not in {p.name + suffix for p, _, suffix in todo}:
            for shard in old.glob("*.tar"):  # a pool of an earlier build (e.g. the other variant)
                shard.unlink()
    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool_exec:
            futures = {
                p.name + sfx: pool_exec.submit(_build_pool, p, src, small, str(data_dir / (p.name + sfx)))
                for p, src, sfx in todo
            }
            for name, future in futures.items():
                results[name] = future.result()
                log(f"[suite] pool {name}: {results[name][1]} ({time.perf_counter() - started:.0f} s)")
    else:
        for p, src, sfx in todo:
            results[p.name + sfx] = _build_pool(p, src, small, str(data_dir / (p.name + sfx)))
            log(f"[suite] pool {p.name + sfx}: {results[p.name + sfx][1]} ({time.perf_counter() - started:.0f} s)")
    manifest: dict[str, Any] = {
        "suite": SUITE,
        "format": FORMAT_VERSION,
        "size": "small" if small else "full",
        "xbench_version": __version__,
        "sources": sources.describe(),
        "missing_sources": {k: sorted(v) for k, v in skipped.items()},
        "variants": variants,
        "tasks": {},
    }
    for p, _, sfx in todo:
        checksums, counts = results[p.name + sfx]
        result = PoolResult(p.name + sfx, data_dir / (p.name + sfx), checksums, counts, suffix=sfx)
        for task in p.declare(result):
            write_declaration(task, tasks_dir)
            manifest["tasks"][task.name] = {"pool": p.name + sfx, "clips": counts}
    atomic_write_json(tasks_dir / MANIFEST, manifest)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    log(f"[suite] {SUITE} ({manifest['size']}): {len(manifest['tasks'])} tasks, {size / 1e6:.1f} MB, "
        f"{time.perf_counter() - started:.0f} s -> {tasks_dir}")  # fmt: skip
    return tasks_dir


def read_manifest(tasks_dir: str | Path) -> dict[str, Any] | None:
    """The ``_suite.json`` of a tasks folder, or None."""
    path = Path(tasks_dir) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def find_suite_tasks_dir(name: str, tasks_dir: str | Path | None = None, root: str | Path | None = None) -> Path:
    """The tasks folder of suite ``name``: ``tasks_dir`` (or ``tasks_dir/tasks``) when its manifest names the
    suite, else ``<data root>/suites/<name>/tasks``, else the small build's; :class:`SuiteError` if none."""
    candidates = [Path(tasks_dir), Path(tasks_dir) / "tasks"] if tasks_dir else []
    candidates += [default_suite_dir(name, root=root) / "tasks", default_suite_dir(name, True, root) / "tasks"]
    for folder in candidates:
        manifest = read_manifest(folder)
        if manifest is not None and manifest.get("suite") == name:
            return folder.expanduser().resolve()
    where = ", ".join(str(c) for c in candidates)
    raise SuiteError(f"suite {name!r} is not built (looked in {where}); run `xbench suite build {name}`")


def suite_tasks(
    name: str = SUITE, tasks_dir: str | Path | None = None, root: str | Path | None = None
) -> list[TaskConfig]:
    """The task declarations of a built suite, in name order (only that suite's folder is read)."""
    folder = find_suite_tasks_dir(name, tasks_dir, root)
    files = sorted(p for p in folder.glob("*.json") if not p.name.startswith(("_", ".")))
    return [load_task_file(p) for p in files]


def default_jobs() -> int:
    """Worker processes for a build: the usable cores, at most 2."""
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
