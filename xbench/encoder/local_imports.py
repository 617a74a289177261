"""Which local files an encoder file imports: modules and packages of its own folder, found with :mod:`ast`.

Local code is what sits next to the encoder file (modules and packages of its folder, never site-packages);
every other name that is not standard library is third party. One walk serves both the cache identity of
an encoder (:mod:`xbench.encoder.identity`: an edited helper module gives a new key) and ``xbench package``
(:mod:`xbench.submission.imports`: the files a submission bundles).
"""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

CODE_SUFFIXES = (".py", ".pyi")
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "build", "dist"}


@dataclass
class ImportScan:
    """What an encoder file imports: local files (absolute), third-party top-level names, notes.

    ``unparsable`` lists local files that could not be parsed (``"<path>: cannot be parsed (...)"``); they
    are still local files, but their own imports are not followed.
    """

    root: Path
    local_files: list[Path] = field(default_factory=list)
    third_party: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    unparsable: list[str] = field(default_factory=list)


def _imported_names(path: Path) -> list[tuple[str, int]]:
    """(module name, relative level) of every import statement in ``path``, functions included.

    Raises ``SyntaxError``/``UnicodeDecodeError`` for a file that is not Python source.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
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
    """Follow the imports of ``encoder_file`` through modules and packages in its own folder.

    A local package is taken whole (every code file under it); relative imports inside it need no
    following. A relative import in a module of the encoder's folder itself is noted (it only works when
    that folder is imported as a package).
    """
    encoder_file = Path(encoder_file).resolve()
    root = encoder_file.parent
    scan = ImportScan(root)
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    queue, seen = [encoder_file], {encoder_file}
    while queue:
        current = queue.pop()
        try:
            imported = _imported_names(current)
        except (SyntaxError, UnicodeDecodeError) as exc:
            scan.unparsable.append(f"{current}: cannot be parsed ({exc})")
            continue
        for name, level in imported:
            if level > 0:
                if current == encoder_file or current.parent == root:
                    scan.notes.append(f"{current.name}: relative import '{'.' * level}{name}' outside a package")
                continue  # inside a local package, which is taken whole
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
