"""``xbench package``: check an encoder and bundle it as a self-contained submission zip.

The deep checker runs first, in the sandbox :mod:`xbench.submission.sandbox` (the encoder's folder and a
scratch folder writable, no network, the memory and time limits), and a failure refuses the package.
The zip then holds the encoder file, the local modules and packages it imports
(:func:`xbench.submission.imports.scan_imports`; only ``.py``/``.pyi`` files of the encoder's folder), a
``requirements.txt`` of its third-party imports at the installed versions, the weights (or a
checksum-verified download script), ``metadata.json`` (format and checksums:
:mod:`xbench.submission.manifest`), the checker report and a short README. Only what ``--weights`` and
``--include`` name joins the code; no caches, VCS folders or data.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from xbench.core.atomic_io import atomic_writer
from xbench.encoder.check_result import CheckResult
from xbench.submission.imports import SKIP_DIRS, requirements_for, scan_imports
from xbench.submission.manifest import (
    CHECK_REPORT,
    FETCH_SCRIPT_NAME,
    FORMAT,
    GENERATED,
    METADATA,
    README,
    REQUIREMENTS,
    SHA256_HEX,
    SubmissionError,
    file_entries,
    sha256_file,
)
from xbench.submission.sandbox import Limits

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

FETCH_SCRIPT = '''"""Download this submission's weights and verify their SHA-256 (standard library only).

Run once from anywhere: python fetch_weights.py
"""

import hashlib
import os
import sys
import urllib.request
from pathlib import Path

URL = {url!r}
SHA256 = {sha256!r}
TARGET = Path(__file__).resolve().parent / {target!r}


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main():
    if TARGET.is_file() and sha256(TARGET) == SHA256:
        print(f"{{TARGET}}: present, checksum OK")
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    partial = TARGET.with_name(f".{{TARGET.name}}.{{os.getpid()}}.part")  # one per process
    with urllib.request.urlopen(URL, timeout=60) as response, open(partial, "wb") as out:
        while True:
            block = response.read(1 << 20)
            if not block:
                break
            out.write(block)
    got = sha256(partial)
    if got != SHA256:
        partial.unlink()
        print(f"checksum mismatch for {{URL}}: expected {{SHA256}}, got {{got}}", file=sys.stderr)
        return 1
    os.replace(partial, TARGET)
    print(f"{{TARGET}}: downloaded, checksum OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


@dataclass
class PackageOptions:
    """What ``xbench package`` bundles (see ``xbench package --help``)."""

    weights: Sequence[str] = ()
    download_url: str | None = None
    sha256: str | None = None
    weights_path: str | None = None  # where the download goes, relative to the encoder file
    include: Sequence[str] = ()
    name: str | None = None
    authors: Sequence[str] = ()
    device: str = "cpu"
    long_seconds: float = 600.0
    sandbox: bool = True  # False: --no-sandbox, the checker imports the encoder unconfined
    limits: Limits = field(default_factory=Limits)


@dataclass
class PackageResult:
    """The written zip, its members with sizes, the checker report and any warnings."""

    path: Path
    members: list[tuple[str, int, int]]  # (name, bytes, compressed bytes)
    report: dict[str, Any]  # the checker's report (CheckReport.to_dict())
    metadata: dict[str, Any]
    warnings: list[str]

    def size_report(self) -> str:
        """A table of the members' sizes, plain and zipped, with the totals and the zip's size."""
        width = max([len(m[0]) for m in self.members] + [4])
        lines = [f"{'file':{width}s} {'bytes':>12s} {'zipped':>12s}"]
        lines += [f"{name:{width}s} {size:>12,d} {packed:>12,d}" for name, size, packed in self.members]
        total, packed = sum(m[1] for m in self.members), sum(m[2] for m in self.members)
        lines.append(f"{'total':{width}s} {total:>12,d} {packed:>12,d}")
        lines.append(f"{self.path}: {self.path.stat().st_size:,d} bytes")
        return "\n".join(lines)


def _split_spec(spec: str) -> tuple[Path, str]:
    path, _, cls = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    return Path(path), cls


def _arcname(path: Path, root: Path, what: str) -> str:
    try:
        rel = path.resolve().relative_to(root)
    except ValueError as exc:
        raise SubmissionError(f"{what} {path} is not inside the encoder's folder {root}") from exc
    parts = rel.parts
    if any(p.startswith(".") or p in SKIP_DIRS for p in parts[:-1]) or path.suffix == ".pyc":
        raise SubmissionError(f"{what} {path} is inside a hidden, cache or build folder")
    return rel.as_posix()


def _readme(meta: dict[str, Any]) -> str:
    enc = meta["encoder"]
    lines = [
        f"# {meta['name']}",
        "",
        f"An audio encoder submission packaged by xbench {meta['xbench_version']} on {meta['created']}.",
        f"Authors: {', '.join(meta['authors']) or 'not given'}.",
        "",
        f"* encoder: `{enc['file']}:{enc['class']}` ({meta['parameters']:,d} parameters)",
        f"* sampling rate {meta['sampling_rate']} Hz, hop {meta['hop_size_in_ms']} ms, output dim {meta['output_dim']}",
        f"* `{REQUIREMENTS}`: third-party packages it imports, at the versions it was checked with",
        f"* `{CHECK_REPORT}`: `xbench check` report at packaging time",
        f"* `{METADATA}`: the above, plus a SHA-256 of every file",
    ]
    if meta.get("download"):
        lines.append(f"* weights: run `python {FETCH_SCRIPT_NAME}` first (downloads `{meta['download']['path']}`)")
    lines += [
        "",
        "Use:",
        "",
        "```bash",
        f"pip install -r {REQUIREMENTS}",
        *([f"python {FETCH_SCRIPT_NAME}"] if meta.get("download") else []),
        f"xbench check --encoder {enc['file']}:{enc['class']}",
        f"xbench run --encoder {enc['file']}:{enc['class']} --suite all --protocol xares",
        "```",
        "",
        "Verify the zip as organisers will: `xbench verify-submission <this zip>`.",
    ]
    return "\n".join(lines) + "\n"


def _checked_encoder(file: Path, cls: str, opts: PackageOptions, readonly: list[Path]) -> dict[str, Any]:
    """The checker's result for the encoder, run in the sandbox; a failure raises :class:`SubmissionError`.

    ``readonly``: weights files outside the encoder's folder, visible to the check as they will be bundled.
    """
    from xbench.submission.child import run_child
    from xbench.submission.sandbox import Sandbox, SandboxUnavailable

    sandbox = Sandbox(enabled=opts.sandbox, gpu=opts.device.startswith("cuda"), limits=opts.limits)
    sandbox.check()
    spec = f"{file.resolve()}:{cls}" if cls else str(file.resolve())
    scratch = Path(tempfile.mkdtemp(prefix="xbench-package-"))
    try:
        args = ["check", "--spec", spec, "--device", opts.device, "--long", str(opts.long_seconds)]
        where = {"cwd": file.resolve().parent, "scratch": scratch / "scratch", "logs": scratch / "logs"}
        child = run_child(sandbox, sys.executable, args, name="checker", readonly=readonly, **where)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if child.tool_error:
        raise SandboxUnavailable(f"the sandbox failed: {child.tool_error}")
    if child.failure:
        raise SubmissionError(f"the encoder could not be checked, not packaged: {child.failure}")
    check = child.result["check"]
    if not check["ok"]:
        failing = "\n".join("  " + CheckResult(**r).line() for r in check["results"] if r["status"] == "fail")
        raise SubmissionError(f"the encoder fails the checker, not packaged:\n{failing}")
    return child.result


def _weights(opts: PackageOptions, root: Path, warnings: list[str]) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """(zip name -> weights file, their metadata entries)."""
    members: dict[str, Path] = {}
    entries = []
    for w in opts.weights:
        wp = Path(w)
        if not wp.is_file():
            raise SubmissionError(f"--weights {w}: no such file")
        try:
            name = _arcname(wp, root, "weights file")
        except SubmissionError:
            name = wp.name
            warnings.append(f"weights {wp} is outside the encoder folder: bundled as {name} next to the encoder")
        members[name] = wp
        entries.append({"path": name, "sha256": sha256_file(wp), "bytes": wp.stat().st_size})
    return members, entries


def fetch_script(url: str, sha256: str, target: str) -> bytes:
    """The ``fetch_weights.py`` that ``xbench package`` writes for these values (verification compares with it)."""
    return FETCH_SCRIPT.format(url=url, sha256=sha256, target=target).encode()


def _download_stub(opts: PackageOptions, root: Path) -> tuple[dict[str, Any], bytes]:
    """(the metadata's ``download`` entry, the fetch script) for ``--download-url``."""
    url = opts.download_url or ""
    target = opts.weights_path or Path(url.rstrip("/").split("/")[-1]).name or "weights.bin"
    sha = (opts.sha256 or "").lower()
    local = root / target
    if local.is_file() and sha256_file(local) != sha:
        raise SubmissionError(f"{local}: its SHA-256 is not --sha256 {sha}; refusing a stub that would fail")
    return {"url": url, "sha256": sha, "path": target}, fetch_script(url, sha, target)


def _write_zip(out: Path, members: dict[str, Path], generated: dict[str, bytes], stored: set[str]) -> None:
    """Write the zip atomically: files streamed from disk, ``stored`` names uncompressed, fixed timestamps."""
    with atomic_writer(out) as fh, zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
        for name in sorted(set(members) | set(generated)):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            if name in generated:
                zf.writestr(info, generated[name])
                continue
            info.file_size = members[name].stat().st_size
            with open(members[name], "rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 2**20)


def package(encoder: str, out: str | Path, options: PackageOptions | None = None) -> PackageResult:
    """Check and bundle ``encoder`` (``file.py`` or ``file.py:Class``) into the zip ``out``.

    Raises :class:`SubmissionError` when the checker fails (the message lists the failing checks) or
    the bundle cannot be made.
    """
    from xbench._version import __version__

    opts = options or PackageOptions()
    file, cls = _split_spec(encoder)
    if file.suffix != ".py" or not file.is_file():
        raise SubmissionError(f"{encoder}: package needs an encoder .py file (file.py or file.py:ClassName)")
    if opts.weights and opts.download_url:
        raise SubmissionError("give either --weights or --download-url/--sha256, not both")
    if opts.download_url and not (opts.sha256 and SHA256_HEX.match(opts.sha256.lower())):
        raise SubmissionError("--download-url needs --sha256 with the 64-hex-digit SHA-256 of the file")
    root = file.resolve().parent
    outside = [Path(w).resolve() for w in opts.weights if not Path(w).resolve().is_relative_to(root)]
    checked = _checked_encoder(file, cls, opts, outside)
    info, report = checked["encoder"], checked["check"]
    report["encoder"] = encoder

    warnings: list[str] = []
    scan = scan_imports(file)
    warnings += scan.notes
    requirements, missing = requirements_for(scan.third_party)
    if missing:
        warnings.append(f"imports provided by no installed distribution (left out of requirements): {missing}")
    members: dict[str, Path] = {file.name: file}
    for path in scan.local_files:
        members[_arcname(path, root, "local module")] = path
    for extra in opts.include:
        members[_arcname(Path(extra), root, "--include file")] = Path(extra)
    weights, weights_meta = _weights(opts, root, warnings)
    members |= weights
    download = None
    generated: dict[str, bytes] = {}
    if opts.download_url:
        download, generated[FETCH_SCRIPT_NAME] = _download_stub(opts, root)
    clash = set(members) & {*GENERATED, *generated}
    if clash:
        raise SubmissionError(f"the encoder folder's {sorted(clash)} would clash with generated files")

    meta = {
        "format": FORMAT,
        "name": opts.name or info["class"],
        "authors": list(opts.authors),
        "encoder": {"file": file.name, "class": cls or info["class"]},
        "parameters": info["parameters"],
        "sampling_rate": info["sampling_rate"],
        "hop_size_in_ms": info["hop_size_in_ms"],
        "output_dim": info["output_dim"],
        "xbench_version": __version__,
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights": weights_meta,
        "download": download,
        "requirements": requirements,
        "checker": {
            "ok": report["ok"],
            "warnings": [CheckResult(**r).line() for r in report["results"] if r["status"] == "warn"],
            "sandbox": "bubblewrap" if opts.sandbox else "none (--no-sandbox)",
        },
    }
    generated[REQUIREMENTS] = ("\n".join(requirements) + "\n").encode()
    generated[CHECK_REPORT] = json.dumps(report, indent=2, default=str).encode()
    generated[README] = _readme(meta).encode()
    meta["files"] = file_entries(members, generated)
    generated[METADATA] = json.dumps(meta, indent=2).encode()
    out = Path(out)
    _write_zip(out, members, generated, stored=set(weights))
    with zipfile.ZipFile(out) as zf:
        sizes = [(i.filename, i.file_size, i.compress_size) for i in zf.infolist()]
    return PackageResult(out, sizes, report, meta, warnings)
