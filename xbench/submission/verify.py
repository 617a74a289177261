"""``xbench verify-submission``: check a submission zip the way organisers will.

The zip is unpacked into a temporary folder, every file is checked against the checksums in
``metadata.json``, a fresh venv is created, and in that venv (a subprocess whose working directory is
the unpacked folder, :mod:`xbench.submission.child`) the deep checker and a small synthetic task run;
peak memory is reported against the challenge limits (a Colab T4 session: 12 GiB RAM, 16 GiB GPU).

The venv reuses the installed packages of the harness's own environment offline: its
``site-packages`` holds a ``.pth`` file that adds this environment's site directories (processing
their ``.pth`` files, so an editable xbench works). A fully isolated install would need the network
(torch alone is a multi-GB download); what the check proves is that the submission runs with only
its own files plus declared requirements, and that the pinned versions are the ones installed.
``--find-links DIR`` additionally runs ``pip install --no-index --find-links DIR -r requirements.txt``
into the venv, for requirements that the harness environment lacks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xbench.submission.child import RESULT_MARK
from xbench.submission.manifest import FETCH_SCRIPT_NAME, FORMAT, METADATA, REQUIREMENTS, check_files
from xbench.submission.small_task import build_small_task

# the ICME 2025 challenge ran submissions in a Colab T4 session: 12 GiB RAM, 16 GiB GPU
RAM_LIMIT = 12 * 2**30
GPU_LIMIT = 16 * 2**30


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
        """Record a step; returns ``ok`` so that a caller can stop at the first failure."""
        self.steps.append((name, ok, detail))
        return ok

    def text(self) -> str:
        """One ``PASS``/``FAIL`` line per step, then the verdict."""
        lines = [f"{'PASS' if ok else 'FAIL'}  {name}: {detail}" for name, ok, detail in self.steps]
        lines.append("submission OK" if self.ok else "submission FAILED")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The verdict, the steps and the child's raw result, for ``--json``."""
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


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def verify_submission(zip_path: str | Path, options: VerifyOptions | None = None) -> VerifyResult:
    """Unpack, check checksums, make a venv, and run the checker and a small task there (see module doc)."""
    opts = options or VerifyOptions()
    result = VerifyResult()
    zip_path = Path(zip_path).resolve()
    if not zipfile.is_zipfile(zip_path):
        result.add("unpack", False, f"{zip_path} is not a zip file")
        return result
    work = Path(tempfile.mkdtemp(prefix="xbench-verify-"))
    result.workdir = work
    try:
        _verify_in(zip_path, work, opts, result)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _unpack(zip_path: Path, sub: Path, result: VerifyResult) -> dict[str, Any] | None:
    """Unpack and check every file against ``metadata.json``; the metadata, or None after a failed step."""
    from xbench.data.safe_extract import safe_extract

    try:
        names = safe_extract(zip_path, sub, keep_archive=True)
    except Exception as exc:
        result.add("unpack", False, f"{type(exc).__name__}: {exc}")
        return None
    result.add("unpack", True, f"{len(names)} files into {sub}")
    try:
        meta = json.loads((sub / METADATA).read_text())
    except (OSError, ValueError) as exc:
        result.add("metadata", False, f"{METADATA} unreadable: {exc}")
        return None
    if meta.get("format") != FORMAT:
        result.add("metadata", False, f"format {meta.get('format')!r} is not {FORMAT}")
        return None
    bad, extra = check_files(sub, meta, names)
    detail = f"missing/damaged: {bad or 'none'}; unlisted: {extra or 'none'}"
    return meta if result.add("checksums", not bad and not extra, detail) else None


def _prepare_venv(
    work: Path, sub: Path, meta: dict[str, Any], opts: VerifyOptions, result: VerifyResult
) -> Path | None:
    """The venv's python once requirements are installed and match and the weights are fetched; else None."""
    start = time.perf_counter()
    try:
        python = make_venv(work / "venv")
    except (subprocess.CalledProcessError, OSError) as exc:
        result.add("venv", False, f"could not create a venv: {exc}")
        return None
    result.add("venv", True, f"{python} ({time.perf_counter() - start:.1f} s; harness site-packages layered)")
    env = _child_env()
    if opts.find_links:
        cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "-q"]
        cmd += [a for d in opts.find_links for a in ("--find-links", str(d))] + ["-r", str(sub / REQUIREMENTS)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if not result.add("install", proc.returncode == 0, (proc.stderr or proc.stdout).strip()[-800:] or "ok"):
            return None
    proc = subprocess.run(
        [str(python), "-I", "-m", "xbench.submission.child", "requirements", str(sub / REQUIREMENTS)],
        capture_output=True,
        text=True,
        env=env,
    )
    mismatched = json.loads(proc.stdout) if proc.returncode == 0 else [proc.stderr.strip()[-400:]]
    reqs = meta.get("requirements", [])
    if not result.add("requirements", not mismatched, f"{len(reqs)} pinned, mismatched: {mismatched or 'none'}"):
        return None
    if meta.get("download"):
        target = sub / meta["download"]["path"]
        proc = subprocess.run(
            [str(python), str(sub / FETCH_SCRIPT_NAME)], capture_output=True, text=True, env=env, timeout=opts.timeout_s
        )
        ok = proc.returncode == 0 and target.is_file()
        if not result.add("weights download", ok, (proc.stdout + proc.stderr).strip()[-400:]):
            return None
    return python


def _verify_in(zip_path: Path, work: Path, opts: VerifyOptions, result: VerifyResult) -> None:
    sub = work / "submission"
    meta = _unpack(zip_path, sub, result)
    python = _prepare_venv(work, sub, meta, opts, result) if meta is not None else None
    if meta is None or python is None:
        return
    tasks_dir = build_small_task(work / "task") if opts.small_task else None
    spec = f"{meta['encoder']['file']}:{meta['encoder']['class']}"
    cmd = [str(python), "-I", "-m", "xbench.submission.child", "run", "--spec", spec, "--work", str(work)]
    cmd += ["--device", opts.device, "--long", str(opts.long_seconds)]
    cmd += ["--tasks-dir", str(tasks_dir)] if tasks_dir else []
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=sub, capture_output=True, text=True, env=_child_env(), timeout=opts.timeout_s)
    except subprocess.TimeoutExpired:
        result.add("run", False, f"timed out after {opts.timeout_s:g} s")
        return
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        result.add("run", False, f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}")
        return
    result.child = json.loads(lines[-1][len(RESULT_MARK) :])
    _judge_child(result, sub, tasks_dir is not None, time.perf_counter() - start)


def _judge_child(result: VerifyResult, sub: Path, with_task: bool, wall: float) -> None:
    """Steps from the child's result: isolation, checker, small task, peak RAM and GPU memory."""
    child = result.child
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
    if with_task:
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
