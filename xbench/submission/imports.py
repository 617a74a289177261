"""Which files and distributions an encoder file needs: local imports found with :mod:`ast`, pinned requirements.

Local code is what sits next to the encoder file (modules and packages of its folder, never site-packages);
everything else that is not standard library is a third-party requirement, pinned to the installed version.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from xbench.submission.manifest import SubmissionError

CODE_SUFFIXES = (".py", ".pyi")
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "build", "dist"}


@dataclass
class ImportScan:
    """What an encoder file imports: local files (relative to its folder) and third-party top-level names."""

    root: Path
    local_files: list[Path] = field(default_factory=list)
    third_party: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def _imported_names(path: Path) -> list[tuple[str, int]]:
    """(module name, relative level) of every import statement in ``path``, functions included."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: cannot be parsed ({exc})") from exc
    names: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append((node.module or "", node.level))
    return names


def _package_files(folder: Path) -> list[Path]:
    """The code files of a local package, skipping hidden folders, caches and build output."""
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        files += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(CODE_SUFFIXES) and not f.startswith(".")]
    return files


def scan_imports(encoder_file: str | Path) -> ImportScan:
    """Follow the imports of ``encoder_file`` through modules and packages in its own folder."""
    encoder_file = Path(encoder_file).resolve()
    root = encoder_file.parent
    scan = ImportScan(root)
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    queue, seen = [encoder_file], {encoder_file}
    while queue:
        current = queue.pop()
        for name, level in _imported_names(current):
            if level > 0:
                if current == encoder_file or current.parent == root:
                    scan.notes.append(f"{current.name}: relative import '{'.' * level}{name}' outside a package")
                continue  # inside a local package, which is bundled whole
            top = name.split(".")[0]
            if not top:
                continue
            module, package = root / f"{top}.py", root / top
            if module.is_file():
                found = [module]
            elif package.is_dir() and any(package.glob("*.py")):
                found = _package_files(package)
            elif top in stdlib:
                continue
            else:
                scan.third_party.add(top)
                continue
            for path in found:
                path = path.resolve()
                if path not in seen:
                    seen.add(path)
                    queue.append(path)
    scan.local_files = sorted(p for p in seen if p != encoder_file)
    return scan


def requirements_for(top_names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(``dist==version`` lines, top-level names no installed distribution provides)."""
    providers = metadata.packages_distributions()
    lines, missing = set(), []
    for top in sorted(set(top_names)):
        dists = providers.get(top)
        if not dists:
            missing.append(top)
            continue
        for dist in dists:
            lines.add(f"{dist}=={metadata.version(dist)}")
    return sorted(lines, key=str.lower), missing


def mismatched_requirements(requirements: Iterable[str]) -> list[str]:
    """``name: want X, found Y`` for every ``name==X`` line whose installed version is not X (None: absent)."""
    bad = []
    for line in requirements:
        name, _, want = line.partition("==")
        try:
            got: str | None = metadata.version(name)
        except metadata.PackageNotFoundError:
            got = None
        if got != want:
            bad.append(f"{name}: want {want}, found {got}")
    return bad
