"""``xbench verify-submission``: check a submission zip the way organisers will, on code from strangers.

In order, each step stopping the verification when it fails:

1. ``metadata``: ``metadata.json`` is read from the zip and validated before anything else is read or
   run (:func:`xbench.submission.manifest.validate_metadata`: known format, every path relative and
   inside the entry);
2. ``unpack`` (links, devices, absolute and ``..`` members refused) and ``checksums`` (every file
   listed, with its SHA-256, reached through no link; nothing unlisted);
3. ``venv``: a fresh venv layered on the harness's own packages (offline: its ``site-packages``
   holds a ``.pth`` file adding this environment's site directories), ``install`` with
   ``--find-links`` (``pip install --no-index``), ``requirements`` (pinned versions installed);
4. ``weights download`` for a download-stub entry: its ``fetch_weights.py`` must be the script
   ``xbench package`` writes for the metadata's URL, SHA-256 and path; run outside the sandbox (it
   needs the network), it checks the SHA-256;
5. ``checker`` and ``small task`` in the sandbox (:mod:`xbench.submission.sandbox`), each a separate
   process tree with its own limits; ``isolation`` (the encoder came from the entry's folder);
6. ``host memory`` (peak RSS of the sandboxed process trees) and, on CUDA, ``GPU memory`` (reserved
   plus context on a run-sized batch) against the challenge limits.

Verdicts: ``ok`` (exit 0), ``rejected`` (the entry failed a step, exit 1), ``error`` (the tool could
not verify, exit 2).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from xbench.submission.child import ChildRun, run_child
from xbench.submission.manifest import (
    FETCH_SCRIPT_NAME,
    METADATA,
    REQUIREMENTS,
    SubmissionError,
    check_files,
    validate_metadata,
)
from xbench.submission.memory import GPU_LIMIT, memory_verdict
from xbench.submission.sandbox import Limits, Sandbox, harness_site_dirs
from xbench.submission.small_task import build_small_task, score_verdict

Verdict = Literal["pass", "fail", "error"]
METADATA_MAX_BYTES = 2**20


@dataclass
class VerifyOptions:
    """How ``xbench verify-submission`` checks a zip."""

    device: str = "cpu"
    long_seconds: float = 600.0
    find_links: Sequence[str] = ()
    keep: bool = False
    small_task: bool = True
    sandbox: bool = True
    limits: Limits = field(default_factory=Limits)


@dataclass
class Step:
    """One verification step: its verdict, a one-line detail, its wall time, and for sandboxed steps peak memory."""

    name: str
    verdict: Verdict
    detail: str
    wall_s: float
    peak_rss_bytes: int | None = None  # the step's process tree; None for the harness's own steps

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"

    def line(self) -> str:
        return f"{self.verdict.upper():5s} {self.name}: {self.detail}"


@dataclass
class VerifyResult:
    """Every step's outcome, the sandbox used, and what the sandboxed steps reported."""

    sandbox: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    checker: dict[str, Any] = field(default_factory=dict)
    small_task: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None
    _clock: float = field(default_factory=time.monotonic, repr=False)

    @property
    def status(self) -> Literal["ok", "rejected", "error"]:
        if any(s.verdict == "error" for s in self.steps):
            return "error"
        return "ok" if self.steps and all(s.ok for s in self.steps) else "rejected"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "rejected": 1, "error": 2}[self.status]

    @property
    def reason(self) -> str | None:
        """The first failing step as one line (None when verified)."""
        bad = next((s for s in self.steps if not s.ok), None)
        return None if bad is None else " ".join(f"{bad.name}: {bad.detail}".split())

    def add(self, name: str, ok: bool | Verdict, detail: str, run: ChildRun | None = None) -> bool:
        """Record a step (``ok`` a bool or a verdict); returns whether it passed."""
        verdict: Verdict = ok if isinstance(ok, str) else ("pass" if ok else "fail")
        now = time.monotonic()
        wall = run.run.wall_s if run is not None else now - self._clock  # the harness's steps: since the last one
        self._clock = now
        peak = run.run.peak_rss_bytes if run is not None else None
        self.steps.append(Step(name, verdict, " ".join(detail.split()), round(wall, 3), peak))
        return verdict == "pass"

    def text(self) -> str:
        """The sandbox, one line per step, then the verdict with its reason."""
        summary = self.sandbox.get("summary", "")
        lines = [f"sandbox: {summary}"] + [s.line() for s in self.steps]
        verdicts = {"ok": "submission OK", "rejected": "submission REJECTED", "error": "verification ERROR"}
        lines.append(verdicts[self.status] + (f": {self.reason}" if self.reason else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The verdict, the sandbox, the steps and what the sandboxed steps reported, for ``--json``."""
        return {
            "status": self.status,
            "ok": self.ok,
            "reason": self.reason,
            "sandbox": self.sandbox,
            "steps": [dataclasses.asdict(s) | {"ok": s.ok} for s in self.steps],
            "checker": self.checker,
            "small_task": self.small_task,
        }


def make_venv(folder: Path) -> Path:
    """A fresh venv (no pip) whose site-packages adds this environment's site dirs; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    probe = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(
        subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
    )
    lines = [f"import site; site.addsitedir({d!r})" for d in harness_site_dirs()]
    (purelib / "_xbench_parent_env.pth").write_text("\n".join(lines) + "\n")
    return python


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def verify_submission(zip_path: str | Path, options: VerifyOptions | None = None) -> VerifyResult:
    """Verify ``zip_path`` (see the module doc).

    Raises :class:`~xbench.submission.sandbox.SandboxUnavailable` before anything is read when the
    sandbox is wanted and ``bwrap`` cannot run.
    """
    opts = options or VerifyOptions()
    sandbox = Sandbox(enabled=opts.sandbox, gpu=opts.device.startswith("cuda"), limits=opts.limits)
    sandbox.check()
    result = VerifyResult(sandbox=sandbox.describe() | {"summary": sandbox.summary()})
    zip_path = Path(zip_path).resolve()
    meta = _metadata(zip_path, result)
    if meta is None:
        return result
    work = Path(tempfile.mkdtemp(prefix="xbench-verify-"))
    result.workdir = work
    try:
        _verify_in(zip_path, work, meta, sandbox, opts, result)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _metadata(zip_path: Path, result: VerifyResult) -> dict[str, Any] | None:
    """``metadata.json`` read from the zip itself and validated, before anything is unpacked; else None."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            info = zf.getinfo(METADATA)
            if info.file_size > METADATA_MAX_BYTES:
                raise SubmissionError(f"{METADATA} is {info.file_size:,d} bytes (at most {METADATA_MAX_BYTES:,d})")
            meta = validate_metadata(json.loads(zf.read(info)))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, SubmissionError) as exc:
        result.add("metadata", False, f"{zip_path.name}: {exc}")
        return None
    return result.add("metadata", True, f"{len(meta['files'])} files listed, paths inside the entry") and meta


def _unpack(zip_path: Path, sub: Path, meta: dict[str, Any], result: VerifyResult) -> bool:
    from xbench.data.safe_extract import safe_extract

    try:
        names = safe_extract(zip_path, sub, keep_archive=True)
    except Exception as exc:
        return result.add("unpack", False, f"{type(exc).__name__}: {exc}")
    result.add("unpack", True, f"{len(names)} files into {sub}")
    bad, extra = check_files(sub, meta, names)
    detail = f"missing/damaged: {bad or 'none'}; unlisted: {extra or 'none'}"
    return result.add("checksums", not bad and not extra, detail)


def _prepare_venv(
    work: Path, sub: Path, meta: dict[str, Any], opts: VerifyOptions, result: VerifyResult
) -> Path | None:
    """The venv's python once requirements are installed and match and the weights are fetched; else None."""
    start = time.perf_counter()
    try:
        python = make_venv(work / "venv")
    except (subprocess.CalledProcessError, OSError) as exc:
        result.add("venv", "error", f"could not create a venv: {exc}")
        return None
    result.add("venv", True, f"{python} ({time.perf_counter() - start:.1f} s; harness site-packages layered)")
    env = _child_env()
    if opts.find_links:
        cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "-q"]
        cmd += [a for d in opts.find_links for a in ("--find-links", str(d))] + ["-r", str(sub / REQUIREMENTS)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if not result.add("install", proc.returncode == 0, (proc.stderr or proc.stdout).strip()[-800:] or "ok"):
            return None
    proc = subprocess.run(  # harness code only: reads the requirements file, imports nothing of the entry
        [str(python), "-I", "-m", "xbench.submission.child", "requirements", str(sub / REQUIREMENTS)],
        capture_output=True,
        text=True,
        env=env,
    )
    mismatched = json.loads(proc.stdout) if proc.returncode == 0 else [proc.stderr.strip()[-400:]]
    reqs = meta.get("requirements", [])
    if not result.add("requirements", not mismatched, f"{len(reqs)} pinned, mismatched: {mismatched or 'none'}"):
        return None
    if meta.get("download") and not _download(sub, meta["download"], opts, result):
        return None
    return python


def _download(sub: Path, download: dict[str, Any], opts: VerifyOptions, result: VerifyResult) -> bool:
    """Run the entry's fetch script once it is known to be the one ``xbench package`` writes."""
    from xbench.submission.package import fetch_script

    script = sub / FETCH_SCRIPT_NAME
    expected = fetch_script(download.get("url", ""), download["sha256"], download["path"])
    if not script.is_file() or script.read_bytes() != expected:
        return result.add("weights download", False, f"{FETCH_SCRIPT_NAME} is not the script xbench package writes")
    try:
        proc = subprocess.run(
            [sys.executable, "-I", str(script)],
            capture_output=True,
            text=True,
            env=_child_env(),
            timeout=opts.limits.wall_seconds,
        )
    except subprocess.TimeoutExpired:
        return result.add("weights download", False, f"timed out after {opts.limits.wall_seconds:g} s")
    ok = proc.returncode == 0 and (sub / download["path"]).is_file()
    return result.add("weights download", ok, (proc.stdout + proc.stderr).strip()[-400:])


def _sandboxed(
    result: VerifyResult, name: str, child: ChildRun, verdict: Callable[[dict[str, Any]], tuple[bool, str]]
) -> bool:
    """Record a sandboxed step: the sandbox's error, else the entry's failure, else ``verdict(child.result)``."""
    if child.tool_error:
        return result.add(name, "error", f"the sandbox failed: {child.tool_error}", child)
    if child.failure:
        return result.add(name, False, child.failure, child)
    ok, detail = verdict(child.result)
    return result.add(name, ok, detail, child)


def _checker_verdict(out: dict[str, Any]) -> tuple[bool, str]:
    from xbench.encoder.check_result import CheckResult

    check = out["check"]
    failed = "; ".join(CheckResult(**r).line() for r in check["results"] if r["status"] == "fail")
    counts = check["counts"]
    detail = f"{counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failed"
    return check["ok"], detail + (f" ({failed})" if failed else "")


def _verify_in(
    zip_path: Path, work: Path, meta: dict[str, Any], sandbox: Sandbox, opts: VerifyOptions, result: VerifyResult
) -> None:
    sub, scratch = work / "submission", work / "scratch"
    if not _unpack(zip_path, sub, meta, result):
        return
    python = _prepare_venv(work, sub, meta, opts, result)
    if python is None:
        return
    spec = f"{meta['encoder']['file']}:{meta['encoder']['class']}"
    where = {"cwd": sub, "scratch": scratch, "logs": work / "logs"}
    check_args = ["check", "--spec", spec, "--device", opts.device, "--long", str(opts.long_seconds)]
    checker = run_child(sandbox, str(python), check_args, name="checker", **where)
    result.checker = checker.result
    if not _sandboxed(result, "checker", checker, _checker_verdict):
        return
    module_file = Path(checker.result["encoder"]["module_file"])
    result.add("isolation", module_file.is_relative_to(sub.resolve()), f"encoder imported from {module_file}")
    runs = [checker]
    if opts.small_task:
        tasks_dir = build_small_task(work / "task")
        task_args = ["task", "--spec", spec, "--device", opts.device, "--work", str(scratch)]
        task_args += ["--tasks-dir", str(tasks_dir)]
        small = run_child(sandbox, str(python), task_args, name="small-task", readonly=[work / "task"], **where)
        result.small_task = small.result
        _sandboxed(result, "small task", small, lambda out: score_verdict(out["scores"]))
        runs.append(small)
    peaks = ", ".join(f"{r.run.peak_rss_bytes / 2**30:.2f} GiB" for r in runs)
    ok, detail = memory_verdict(max(r.run.peak_rss_bytes for r in runs), opts.limits.memory_bytes, "peak RSS")
    result.add("host memory", ok, f"{detail} (process tree, per sandboxed step: {peaks})")
    _gpu_step(result, checker.result.get("batch", {}))


def _gpu_step(result: VerifyResult, batch: dict[str, Any]) -> None:
    """The GPU verdict from the run-sized batch measured in the checker step (CUDA runs only)."""
    if "gpu" not in batch:
        if "error" in batch:
            result.add("run batch", False, f"a run-sized batch raised {batch['error']}")
        return
    gpu = batch["gpu"]
    ok, detail = memory_verdict(gpu["peak"], GPU_LIMIT, "reserved + context")
    shape = f"{batch['clips']} × {batch['seconds']:g} s batch"
    result.add("GPU memory", ok, f"{detail} ({gpu['reserved_peak'] / 2**30:.2f} GiB reserved on a {shape})")
