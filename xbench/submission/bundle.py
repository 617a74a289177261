"""``xbench package`` and ``xbench verify-submission``: a self-contained encoder submission and its check.

``package`` runs the deep checker (and refuses on a failure), then zips the encoder file, the local
modules and packages it imports (found by walking ``import`` statements with :mod:`ast`, next to the
file; never site-packages), a ``requirements.txt`` of its third-party imports with the installed
versions, the weights (or a checksum-verified download script), ``metadata.json``, the checker
report and a short README. Only ``.py``/``.pyi`` files of local code go in, plus what ``--weights``
and ``--include`` name; no caches, VCS folders or data.

``verify-submission`` unpacks a zip into a temporary folder, checks every file against the checksums
in ``metadata.json``, creates a fresh venv, and in that venv (a subprocess whose working directory is
the unpacked folder) runs the deep checker and a small synthetic task, reporting peak memory against
the challenge limits (Colab T4: 12 GiB RAM, 16 GiB GPU).

The venv reuses the installed packages of the harness's own environment offline: its
``site-packages`` holds a ``.pth`` file that adds this environment's site directories (processing
their ``.pth`` files, so an editable xbench works). A fully isolated install would need the network
(torch alone is a multi-GB download); what the check proves is that the submission runs with only
its own files plus declared requirements, and that the pinned versions are the ones installed.
``--find-links DIR`` additionally runs ``pip install --no-index --find-links DIR -r requirements.txt``
into the venv, for requirements that the harness environment lacks.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

FORMAT = "xbench-submission/1"
RAM_LIMIT = 12 * 2**30  # the ICME 2025 challenge ran submissions in a Colab T4 session: 12 GiB RAM, 16 GiB GPU
GPU_LIMIT = 16 * 2**30
CODE_SUFFIXES = (".py", ".pyi")
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "build", "dist"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_CHILD_MARK = "XBENCH-VERIFY-RESULT "


class SubmissionError(Exception):
    """A submission that cannot be packaged or verified; the message says why."""


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Local imports and requirements
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Packaging
# --------------------------------------------------------------------------------------------------

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
    partial = TARGET.with_name(TARGET.name + ".part")
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


@dataclass
class PackageResult:
    """The written zip, its members with sizes, the checker report and any warnings."""

    path: Path
    members: list[tuple[str, int, int]]  # (name, bytes, compressed bytes)
    report: Any
    metadata: dict[str, Any]
    warnings: list[str]

    def size_report(self) -> str:
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
        "* `requirements.txt`: third-party packages it imports, at the versions it was checked with",
        "* `check_report.json`: `xbench check` report at packaging time",
        "* `metadata.json`: the above, plus a SHA-256 of every file",
    ]
    if meta.get("download"):
        lines.append(f"* weights: run `python fetch_weights.py` first (downloads `{meta['download']['path']}`)")
    lines += [
        "",
        "Use:",
        "",
        "```bash",
        "pip install -r requirements.txt",
        *(["python fetch_weights.py"] if meta.get("download") else []),
        f"xbench check --encoder {enc['file']}:{enc['class']}",
        f"xbench run --encoder {enc['file']}:{enc['class']} --suite all --protocol xares",
        "```",
        "",
        "Verify the zip as organisers will: `xbench verify-submission <this zip>`.",
    ]
    return "\n".join(lines) + "\n"


def package(encoder: str, out: str | Path, options: PackageOptions | None = None) -> PackageResult:
    """Check and bundle ``encoder`` (``file.py`` or ``file.py:Class``) into the zip ``out``.

    Raises :class:`SubmissionError` when the checker fails (the message lists the failing checks) or
    the bundle cannot be made.
    """
    from xbench._version import __version__
    from xbench.encoder.contract import EncoderError, HarnessOptions, load_encoder
    from xbench.encoder.deep_check import DeepCheckOptions, deep_check

    opts = options or PackageOptions()
    file, cls = _split_spec(encoder)
    if file.suffix != ".py" or not file.is_file():
        raise SubmissionError(f"{encoder}: package needs an encoder .py file (file.py or file.py:ClassName)")
    if opts.weights and opts.download_url:
        raise SubmissionError("give either --weights or --download-url/--sha256, not both")
    if opts.download_url and not (opts.sha256 and _SHA256.match(opts.sha256.lower())):
        raise SubmissionError("--download-url needs --sha256 with the 64-hex-digit SHA-256 of the file")
    root = file.resolve().parent
    try:
        instance = load_encoder(encoder)
    except EncoderError as exc:
        raise SubmissionError(str(exc)) from exc
    report = deep_check(instance, HarnessOptions(device=opts.device), DeepCheckOptions(long_seconds=opts.long_seconds))
    report.encoder = encoder
    if not report.ok:
        failing = "\n".join("  " + r.line() for r in report.failed)
        raise SubmissionError(f"the encoder fails the checker, not packaged:\n{failing}")

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
    weights_meta = []
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
        weights_meta.append({"path": name, "sha256": sha256_file(wp), "bytes": wp.stat().st_size})
    download = None
    generated: dict[str, bytes] = {}
    if opts.download_url:
        target = opts.weights_path or Path(opts.download_url.rstrip("/").split("/")[-1]).name or "weights.bin"
        sha = opts.sha256.lower()  # type: ignore[union-attr]
        local = root / target
        if local.is_file() and sha256_file(local) != sha:
            raise SubmissionError(f"{local}: its SHA-256 is not --sha256 {sha}; refusing a stub that would fail")
        download = {"url": opts.download_url, "sha256": sha, "path": target}
        generated["fetch_weights.py"] = FETCH_SCRIPT.format(url=opts.download_url, sha256=sha, target=target).encode()
    clash = set(members) & {"requirements.txt", "metadata.json", "check_report.json", "README.md", *generated}
    if clash:
        raise SubmissionError(f"the encoder folder's {sorted(clash)} would clash with generated files")

    meta = {
        "format": FORMAT,
        "name": opts.name or type(instance).__name__,
        "authors": list(opts.authors),
        "encoder": {"file": file.name, "class": cls or type(instance).__name__},
        "parameters": int(sum(p.numel() for p in instance.parameters())),
        "sampling_rate": int(instance.sampling_rate),
        "hop_size_in_ms": float(instance.hop_size_in_ms),
        "output_dim": int(instance.output_dim),
        "xbench_version": __version__,
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights": weights_meta,
        "download": download,
        "requirements": requirements,
        "checker": {"ok": report.ok, "warnings": [r.line() for r in report.warned]},
    }
    generated["requirements.txt"] = ("\n".join(requirements) + "\n").encode()
    generated["check_report.json"] = json.dumps(report.to_dict(), indent=2, default=str).encode()
    generated["README.md"] = _readme(meta).encode()
    listing = {name: (sha256_file(path), path.stat().st_size) for name, path in members.items()}
    listing |= {name: (hashlib.sha256(data).hexdigest(), len(data)) for name, data in generated.items()}
    meta["files"] = [{"path": n, "sha256": h, "bytes": b} for n, (h, b) in sorted(listing.items())]
    generated["metadata.json"] = json.dumps(meta, indent=2).encode()
    weight_names = {w["path"] for w in weights_meta}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        for name in sorted(set(members) | set(generated)):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED if name in weight_names else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            if name in generated:
                zf.writestr(info, generated[name])
                continue
            info.file_size = members[name].stat().st_size
            with open(members[name], "rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 2**20)
    tmp.replace(out)
    with zipfile.ZipFile(out) as zf:
        sizes = [(i.filename, i.file_size, i.compress_size) for i in zf.infolist()]
    return PackageResult(out, sizes, report, meta, warnings)


# --------------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------------


@dataclass
class VerifyOptions:
    """How ``xbench verify-submission`` checks a zip."""

    device: str = "cpu"
    long_seconds: float = 600.0
    find_links: Sequence[str] = ()
    keep: bool = False
    timeout_s: float = 3600.0
    small_task: bool = True


@dataclass
class VerifyResult:
    """Outcome of every verification step; :attr:`ok` when all passed and memory is under the limits."""

    steps: list[tuple[str, bool, str]] = field(default_factory=list)
    child: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(ok for _, ok, _ in self.steps)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.steps.append((name, ok, detail))
        return ok

    def text(self) -> str:
        lines = [f"{'PASS' if ok else 'FAIL'}  {name}: {detail}" for name, ok, detail in self.steps]
        lines.append("submission OK" if self.ok else "submission FAILED")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "steps": [{"name": n, "ok": ok, "detail": d} for n, ok, d in self.steps],
            "child": self.child,
        }


def _parent_site_dirs() -> list[str]:
    import site

    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        dirs.append(site.getusersitepackages())
    return [d for d in dirs if Path(d).is_dir()]


def make_venv(folder: Path) -> Path:
    """A fresh venv (no pip) whose site-packages adds this environment's site dirs; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    probe = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(
        subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
    )
    lines = [f"import site; site.addsitedir({d!r})" for d in _parent_site_dirs()]
    (purelib / "_xbench_parent_env.pth").write_text("\n".join(lines) + "\n")
    return python


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def build_small_task(folder: Path, seed: int = 0) -> Path:
    """A 3-class tone task (24 train / 9 valid / 9 test clips, 16 kHz) and its declaration; returns tasks dir."""
    import numpy as np

    from xbench.data.writer import write_audio_shards
    from xbench.taskspec.config import LabelSpec, TaskConfig

    sr, freqs = 16000, {"low": 300.0, "mid": 900.0, "high": 2500.0}
    classes = tuple(freqs)

    def items(split_seed: int, n: int, prefix: str) -> Iterable[tuple[str, tuple[Any, int], dict[str, str]]]:
        rng = np.random.default_rng(split_seed)
        for i in range(n):
            label = classes[i % 3]
            t = np.arange(int(rng.uniform(0.6, 1.2) * sr)) / sr
            x = 0.3 * np.sin(2 * np.pi * freqs[label] * rng.uniform(0.9, 1.1) * t)
            yield (
                f"{prefix}{i:03d}",
                ((x + 0.05 * rng.standard_normal(t.size)).astype(np.float32), sr),
                {"label": label},
            )

    data = folder / "data"
    for split, n, s in (("train", 24, seed), ("valid", 9, seed + 1), ("test", 9, seed + 2)):
        write_audio_shards(data, f"verify_{split}-%06d.tar", items(s, n, split[:2]), maxcount=100)
    task = TaskConfig(
        name="verify_tones",
        domain="sound",
        labels=LabelSpec("class", "label", classes=classes),
        output_dim=3,
        train_split="verify_train",
        valid_split="verify_valid",
        test_split="verify_test",
        data_dir=str(data),
        eval_weight=9,
        epochs=2,
        batch_size_encode=4,
    )
    tasks = folder / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    (tasks / "verify_tones.json").write_text(json.dumps(task.to_dict()))
    return tasks


def _run_child(args: argparse.Namespace) -> int:
    """Inside the venv: checker, optional small task, peak memory; prints one JSON line."""
    import resource

    import torch

    from xbench.encoder.contract import HarnessOptions, load_encoder
    from xbench.encoder.deep_check import DeepCheckOptions, deep_check

    torch.set_num_threads(int(os.environ.get("XBENCH_NUM_THREADS", torch.get_num_threads())))
    out: dict[str, Any] = {"python": sys.executable, "torch": torch.__version__}
    try:
        encoder = load_encoder(args.spec)
        out["encoder_module_file"] = str(Path(sys.modules[type(encoder).__module__].__file__ or "").resolve())
        start = time.perf_counter()
        report = deep_check(encoder, HarnessOptions(device=args.device), DeepCheckOptions(long_seconds=args.long))
        out["check"] = report.to_dict()
        out["check_s"] = time.perf_counter() - start
        if args.tasks_dir and report.ok:
            from xbench.pipeline.run import RunOptions, evaluate
            from xbench.taskspec.registry import get_task

            start = time.perf_counter()
            frame = evaluate(
                encoder,
                [get_task("verify_tones", args.tasks_dir)],
                RunOptions(
                    output_dir=str(Path(args.work) / "results"),
                    cache_root=str(Path(args.work) / "cache"),
                    device=args.device,
                    bootstrap_rounds=20,
                    show_progress=False,
                ),
            )
            out["task"] = {r.track: round(float(r.score), 4) for r in frame.itertuples()}
            out["task_s"] = time.perf_counter() - start
    except Exception as exc:  # reported to the parent, which fails the step
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if args.device.startswith("cuda") and torch.cuda.is_available():
        out["peak_cuda_bytes"] = int(torch.cuda.max_memory_allocated(args.device))
    print(_CHILD_MARK + json.dumps(out, default=str), flush=True)
    return 0


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def verify_submission(zip_path: str | Path, options: VerifyOptions | None = None) -> VerifyResult:
    """Unpack, check checksums, make a venv, and run the checker and a small task there (see module doc)."""
    from xbench.data.safe_extract import safe_extract

    opts = options or VerifyOptions()
    result = VerifyResult()
    zip_path = Path(zip_path).resolve()
    if not zipfile.is_zipfile(zip_path):
        result.add("unpack", False, f"{zip_path} is not a zip file")
        return result
    work = Path(tempfile.mkdtemp(prefix="xbench-verify-"))
    result.workdir = work
    try:
        _verify_in(zip_path, work, opts, result, safe_extract)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _verify_in(zip_path: Path, work: Path, opts: VerifyOptions, result: VerifyResult, safe_extract: Any) -> None:
    sub = work / "submission"
    try:
        names = safe_extract(zip_path, sub, keep_archive=True)
    except Exception as exc:
        result.add("unpack", False, f"{type(exc).__name__}: {exc}")
        return
    result.add("unpack", True, f"{len(names)} files into {sub}")
    try:
        meta = json.loads((sub / "metadata.json").read_text())
    except (OSError, ValueError) as exc:
        result.add("metadata", False, f"metadata.json unreadable: {exc}")
        return
    if meta.get("format") != FORMAT:
        result.add("metadata", False, f"format {meta.get('format')!r} is not {FORMAT}")
        return
    bad = [f["path"] for f in meta.get("files", []) if not (sub / f["path"]).is_file()]
    bad += [
        f["path"]
        for f in meta.get("files", [])
        if (sub / f["path"]).is_file() and sha256_file(sub / f["path"]) != f["sha256"]
    ]
    listed = {f["path"] for f in meta.get("files", [])} | {"metadata.json"}
    extra = sorted(set(names) - listed)
    if not result.add(
        "checksums", not bad and not extra, f"missing/damaged: {bad or 'none'}; unlisted: {extra or 'none'}"
    ):
        return
    start = time.perf_counter()
    try:
        python = make_venv(work / "venv")
    except (subprocess.CalledProcessError, OSError) as exc:
        result.add("venv", False, f"could not create a venv: {exc}")
        return
    result.add("venv", True, f"{python} ({time.perf_counter() - start:.1f} s; harness site-packages layered)")
    env = _child_env()
    if opts.find_links:
        cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "-q"]
        cmd += [a for d in opts.find_links for a in ("--find-links", str(d))] + ["-r", str(sub / "requirements.txt")]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if not result.add("install", proc.returncode == 0, (proc.stderr or proc.stdout).strip()[-800:] or "ok"):
            return
    check_reqs = (
        "import json, sys\nfrom importlib import metadata\nbad = []\n"
        "for line in open(sys.argv[1]).read().split():\n"
        "    name, _, want = line.partition('==')\n"
        "    try:\n        got = metadata.version(name)\n    except metadata.PackageNotFoundError:\n"
        "        got = None\n"
        "    if got != want:\n        bad.append(f'{name}: want {want}, found {got}')\n"
        "print(json.dumps(bad))\n"
    )
    proc = subprocess.run(
        [str(python), "-c", check_reqs, str(sub / "requirements.txt")], capture_output=True, text=True, env=env
    )
    mismatched = json.loads(proc.stdout) if proc.returncode == 0 else [proc.stderr.strip()[-400:]]
    reqs = meta.get("requirements", [])
    if not result.add("requirements", not mismatched, f"{len(reqs)} pinned, mismatched: {mismatched or 'none'}"):
        return
    if meta.get("download"):
        target = sub / meta["download"]["path"]
        proc = subprocess.run(
            [str(python), str(sub / "fetch_weights.py")],
            capture_output=True,
            text=True,
            env=env,
            timeout=opts.timeout_s,
        )
        ok = proc.returncode == 0 and target.is_file()
        if not result.add("weights download", ok, (proc.stdout + proc.stderr).strip()[-400:]):
            return
    tasks_dir = build_small_task(work / "task") if opts.small_task else None
    spec = f"{meta['encoder']['file']}:{meta['encoder']['class']}"
    cmd = [str(python), "-I", "-m", "xbench.submission.bundle", "_child", "--spec", spec, "--work", str(work)]
    cmd += ["--device", opts.device, "--long", str(opts.long_seconds)]
    cmd += ["--tasks-dir", str(tasks_dir)] if tasks_dir else []
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=sub, capture_output=True, text=True, env=env, timeout=opts.timeout_s)
    except subprocess.TimeoutExpired:
        result.add("run", False, f"timed out after {opts.timeout_s:g} s")
        return
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_CHILD_MARK)]
    if proc.returncode != 0 or not lines:
        result.add("run", False, f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}")
        return
    child = json.loads(lines[-1][len(_CHILD_MARK) :])
    result.child = child
    wall = time.perf_counter() - start
    if "error" in child and "check" not in child:
        result.add("checker", False, child["error"])
        return
    where = Path(child.get("encoder_module_file", ""))
    result.add("isolation", where.is_relative_to(sub.resolve()), f"encoder imported from {where}")
    check = child["check"]
    failed = [r for r in check["results"] if r["status"] == "fail"]
    lines_failed = "; ".join(f"{r['name']}: {r['reason']}" for r in failed)
    result.add(
        "checker",
        check["ok"],
        f"{check['counts']['pass']} passed, {check['counts']['warn']} warnings, {check['counts']['fail']} failed"
        + (f" ({lines_failed})" if failed else ""),
    )
    if tasks_dir is not None:
        if "task" in child:
            result.add("small task", True, f"scores {child['task']} in {child['task_s']:.1f} s")
        else:
            result.add("small task", False, child.get("error", "not run (the checker failed)"))
    rss = child["peak_rss_bytes"]
    result.add(
        "peak RAM", rss <= RAM_LIMIT, f"{_gib(rss)} of the {_gib(RAM_LIMIT)} limit (whole process, {wall:.0f} s)"
    )
    if "peak_cuda_bytes" in child:
        gpu = child["peak_cuda_bytes"]
        result.add("peak GPU memory", gpu <= GPU_LIMIT, f"{_gib(gpu)} of the {_gib(GPU_LIMIT)} limit")


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _cmd_package(args: argparse.Namespace) -> int:
    opts = PackageOptions(
        weights=args.weights or (),
        download_url=args.download_url,
        sha256=args.sha256,
        weights_path=args.weights_path,
        include=args.include or (),
        name=args.name,
        authors=args.authors or (),
        device=args.device,
        long_seconds=args.long_seconds,
    )
    try:
        res = package(args.encoder, args.out, opts)
    except SubmissionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for warning in res.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(res.size_report())
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    opts = VerifyOptions(
        device=device,
        long_seconds=args.long_seconds,
        find_links=args.find_links or (),
        keep=args.keep,
        small_task=not args.no_task,
    )
    res = verify_submission(args.zip, opts)
    print(json.dumps(res.to_dict(), indent=2, default=str) if args.json else res.text())
    if args.keep and res.workdir:
        print(f"kept: {res.workdir}", file=sys.stderr)
    return 0 if res.ok else 1


def add_submission_commands(subparsers: Any) -> None:
    """Register ``xbench package`` and ``xbench verify-submission``."""
    pack = subparsers.add_parser(
        "package",
        help="check an encoder and bundle it as a submission zip",
        description="Run the deep checker (refusing on failure), then zip the encoder file, the local modules "
        "it imports, requirements.txt, weights or a checksum-verified download script, metadata, the checker "
        "report and a README; prints a size report.",
    )
    pack.add_argument("--encoder", required=True, help="path/to/encoder.py[:ClassName]")
    pack.add_argument("--out", required=True, help="the zip to write")
    pack.add_argument("--weights", action="append", help="a weights file to bundle (repeatable)")
    pack.add_argument("--download-url", default=None, help="URL the weights are downloaded from instead")
    pack.add_argument("--sha256", default=None, help="SHA-256 of the downloaded weights (with --download-url)")
    pack.add_argument("--weights-path", default=None, help="download target, relative to the encoder file")
    pack.add_argument("--include", action="append", help="another file of the encoder's folder to bundle")
    pack.add_argument("--name", default=None, help="submission name (default: the encoder class)")
    pack.add_argument("--authors", nargs="+", default=None, help="author names")
    pack.add_argument("--device", default="cpu", help="device for the checker (default cpu)")
    pack.add_argument("--long-seconds", type=float, default=600.0, help="length of the long-input check (s)")
    pack.set_defaults(func=_cmd_package)

    ver = subparsers.add_parser(
        "verify-submission",
        help="verify a submission zip in a fresh venv",
        description="Unpack, verify checksums, create a fresh venv layered on this environment's packages "
        "(offline), run the checker and a small synthetic task there, and report peak memory against the "
        "challenge limits (12 GiB RAM, 16 GiB GPU).",
    )
    ver.add_argument("zip", help="the submission zip")
    ver.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    ver.add_argument("--long-seconds", type=float, default=600.0, help="length of the long-input check (s)")
    ver.add_argument("--find-links", action="append", help="install requirements offline from this folder")
    ver.add_argument("--no-task", action="store_true", help="skip the small synthetic task")
    ver.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ver.add_argument("--json", action="store_true", help="print the result as JSON")
    ver.set_defaults(func=_cmd_verify)


def _child_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m xbench.submission.bundle _child")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--long", type=float, default=600.0)
    parser.add_argument("--tasks-dir", default=None)
    return _run_child(parser.parse_args(argv))


if __name__ == "__main__":
    if sys.argv[1:2] != ["_child"]:
        sys.exit("usage: python -m xbench.submission.bundle _child ... (internal; use `xbench verify-submission`)")
    sys.exit(_child_main(sys.argv[2:]))
