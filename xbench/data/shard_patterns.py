"""Which shard files a task's ``audio_tar_name_of_split`` pattern names: one resolver for ``ls`` and ``run``.

A pattern is brace-expanded first (``{a,b}``, nested groups, ``{000000..000003}`` with zero padding kept,
shell order); each expansion holding ``*``, ``?`` or ``[`` is globbed in the task's data folder, any other
is a file name that must exist there. X-ARES (``xares/audiowebdataset.py``, ``expand_with_brace``) globs a
pattern with ``*`` and brace-expands any other, failing when an expanded file is missing; every pattern it
accepts resolves to the same files here, and a pattern mixing both (``{train,valid}-*.tar``) works too.

This module imports no torch, so ``xbench ls`` stays light; :mod:`xbench.data.shards` re-exports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WILDCARDS", "ShardMatch", "expand_braces", "resolve_shards"]

WILDCARDS = "*?["
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


def _closing(text: str, start: int) -> int:
    """Index of the ``}`` matching the ``{`` at ``start``, or -1."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return -1


def _options(body: str) -> list[str] | None:
    """The alternatives of one ``{...}`` body, or None when it is literal text (no comma, no range)."""
    match = _RANGE.match(body)
    if match:
        lo, hi = int(match[1]), int(match[2])
        padded = any(len(d.lstrip("-")) > 1 and d.lstrip("-").startswith("0") for d in (match[1], match[2]))
        width = max(len(match[1]), len(match[2])) if padded else 0
        step = 1 if hi >= lo else -1
        return [str(i).zfill(width) for i in range(lo, hi + step, step)]
    parts, depth, last = [], 0, 0
    for i, ch in enumerate(body):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(body[last:i])
            last = i + 1
    return [*parts, body[last:]] if parts else None


def expand_braces(pattern: str) -> list[str]:
    """Shell-style brace expansion, left to right: ``a{1,2}{x,y}`` → ``a1x a1y a2x a2y``.

    ``{00..02}`` keeps zero padding; an unmatched brace or a group without a comma or range stays literal.
    """
    start = pattern.find("{")
    while start >= 0:
        end = _closing(pattern, start)
        if end < 0:
            return [pattern]
        options = _options(pattern[start + 1 : end])
        if options is not None:
            head, tail = pattern[:start], expand_braces(pattern[end + 1 :])
            return [head + text + rest for option in options for text in expand_braces(option) for rest in tail]
        start = pattern.find("{", start + 1)
    return [pattern]


@dataclass(frozen=True)
class ShardMatch:
    """The files a pattern names in one folder: ``found`` (sorted), ``missing`` (named outright, absent) and
    ``folders`` (folders it matches or names: never shards, and an error for a run)."""

    pattern: str
    found: tuple[Path, ...]
    missing: tuple[Path, ...]
    folders: tuple[Path, ...] = ()

    @property
    def complete(self) -> bool:
        """At least one shard, none of the named ones missing, and no folder matched (a run refuses a folder)."""
        return bool(self.found) and not self.missing and not self.folders


def resolve_shards(folder: str | Path, pattern: str) -> ShardMatch:
    """Resolve a shard pattern inside ``folder`` (see the module docstring)."""
    folder = Path(folder)
    found: set[Path] = set()
    missing: list[Path] = []
    folders: set[Path] = set()
    for name in expand_braces(pattern):
        if any(ch in name for ch in WILDCARDS):
            if folder.is_dir():
                matched = list(folder.glob(name))
                found.update(p for p in matched if p.is_file())
                folders.update(p for p in matched if p.is_dir())
        elif (folder / name).is_file():
            found.add(folder / name)
        else:
            missing.append(folder / name)
            if (folder / name).is_dir():
                folders.add(folder / name)
    return ShardMatch(pattern, tuple(sorted(found)), tuple(dict.fromkeys(missing)), tuple(sorted(folders)))
