"""Which files and distributions an encoder file needs: local imports, pinned requirements.

The import walk is :func:`xbench.encoder.local_imports.scan_imports` (the encoder stage keys its cache on
the same files); here a file that cannot be parsed stops the packaging, and third-party names become
requirements pinned to the installed versions.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from xbench.encoder import local_imports
from xbench.encoder.local_imports import SKIP_DIRS, ImportScan
from xbench.submission.manifest import SubmissionError

__all__ = ["SKIP_DIRS", "ImportScan", "mismatched_requirements", "requirements_for", "scan_imports"]


def scan_imports(encoder_file: str | Path) -> ImportScan:
    """The local files and third-party names ``encoder_file`` imports; :class:`SubmissionError` if one
    of its local files cannot be parsed."""
    scan = local_imports.scan_imports(encoder_file)
    if scan.unparsable:
        raise SubmissionError(scan.unparsable[0])
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
