"""Running a submission's code sealed: a bubblewrap (``bwrap``) sandbox with memory, CPU-time and wall-time limits.

What a sandboxed step sees (``bwrap --unshare-all --die-with-parent --new-session``):

* no network (a new, empty network namespace), its own pid, IPC and UTS namespaces;
* a read-only root holding only what Python needs: ``/usr`` and the ``/bin``, ``/lib*`` links, the
  dynamic-linker files of ``/etc``, a new ``/proc`` and a minimal ``/dev``; the harness environment
  read-only (its venv or prefix, the interpreter's installation, the site directories and the xbench
  packages); nothing else of the machine (no HOME, no ``/etc/passwd``, no other project);
* writable: the entry's folder and a scratch folder, which holds the private HOME and TMPDIR; ``/tmp``
  and ``/dev/shm`` are small private tmpfs mounts;
* on CUDA, the ``/dev/nvidia*`` devices and a read-only ``/sys``.

Limits: the wall time is enforced here (the sandbox is killed); every process starts under
``RLIMIT_CPU`` (CPU seconds per process) and, on CPU, ``RLIMIT_DATA`` (the memory limit per process:
unlike ``RLIMIT_AS`` it ignores mapped libraries and reserved-but-inaccessible address space, which
torch and glibc create in gigabytes without using them). The memory limit of the whole tree is
enforced by sampling the memory of every process of the sandbox every 50 ms (:func:`tree_memory`:
summed RSS, or summed PSS past half the limit) and killing it above the limit; the peak of that sum
(or the largest single-process ``ru_maxrss``, if higher) is the step's peak memory. A cgroup would
count exactly, but creating one needs root or a systemd user session with delegation, which a Colab
session, a container or a CI runner rarely gives.

The first process inside is :mod:`xbench.submission.supervisor` (limits, subreaper, report of
leftover processes and files). Without a working ``bwrap`` a sandboxed run is refused
(:class:`SandboxUnavailable`); ``Sandbox(enabled=False)`` (``--no-sandbox``) runs the same steps,
limits and reports, unconfined.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from xbench.submission.memory import RAM_LIMIT, gib
from xbench.submission.supervisor import process_tree

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; Fedora: sudo dnf install bubblewrap) "
    "and allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 "
    "also kernel.apparmor_restrict_unprivileged_userns=0), or pass --no-sandbox to run the entry's code "
    "unconfined (only for code you trust)"
)
NO_SANDBOX_WARNING = (
    "NO SANDBOX (--no-sandbox): the entry's code runs as you, with your files, your HOME and the network; "
    "only the limits and the leftover checks apply"
)
HARNESS_PACKAGES = ("xbench", "xbench.encoders", "xbench.tasks")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime")
# isolated (no PYTHON* variables, no user site, no script folder on sys.path) and no bytecode written:
# -I ignores PYTHONDONTWRITEBYTECODE, and without -B imports would leave __pycache__ in the entry's folder
PYTHON_FLAGS = ("-I", "-B")
PASS_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XBENCH_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "TZ")
PRIVATE_TMPFS_BYTES = 512 * 2**20  # /tmp and /dev/shm; larger temporary files belong in TMPDIR (on disk)
POLL_S = 0.05
OUTPUT_TAIL = 4 * 2**20


class SandboxUnavailable(RuntimeError):
    """``bwrap`` cannot run here; the message says why and how to install it (a tool error, not the entry's)."""


@dataclass(frozen=True)
class Limits:
    """What one sandboxed step may use: memory of the whole process tree, CPU seconds per process, wall time."""

    memory_bytes: int = RAM_LIMIT
    wall_seconds: float = 3600.0
    cpu_seconds: float | None = None  # None: the wall time on every core

    @property
    def cpu(self) -> float:
        return self.cpu_seconds or self.wall_seconds * (os.cpu_count() or 1)

    def to_dict(self) -> dict[str, float]:
        return {"memory_bytes": self.memory_bytes, "wall_seconds": self.wall_seconds, "cpu_seconds": self.cpu}


@dataclass
class StepRun:
    """What a sandboxed command did: exit code, output tails, wall and CPU time, peak memory, the supervisor report."""

    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    killed: str | None = None  # why the harness killed it (memory, wall time)
    status: dict[str, Any] | None = None  # the supervisor's report; None when it never reported
    limits: Limits = field(default_factory=Limits)

    @property
    def tool_error(self) -> str | None:
        """The sandbox itself failed to start (bwrap's own error), not the entry."""
        if self.status is None and not self.killed:
            lines = [ln for ln in self.stderr.splitlines() if ln.startswith("bwrap:")]
            return lines[-1] if lines else None
        return None

    @property
    def problem(self) -> str | None:
        """One line when a limit ended the step or it left processes or files behind; else None."""
        text = self._problem()
        return " ".join(text.split()) if text else None

    def _problem(self) -> str | None:
        if self.killed:
            return self.killed
        if self.status is None:
            tail = (self.stderr.strip().splitlines() or ["no output"])[-1]
            return f"the sandbox ended without the supervisor's report (exit {self.returncode}): {tail[:300]}"
        code = self.status["returncode"]
        if code == -signal.SIGXCPU or (code == -signal.SIGKILL and self.status["cpu_s"] >= self.limits.cpu):
            return f"CPU time: reached the {self.limits.cpu:g} s limit (killed)"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        if self.status["leftovers"]:
            left = self.status["leftovers"]
            return f"left {len(left)} process(es) running after it exited (killed): {'; '.join(left)[:300]}"
        if self.status["stray_files"]:
            return f"left files outside its folder: {', '.join(self.status['stray_files'])[:300]}"
        return None


def harness_site_dirs() -> list[str]:
    """This environment's site directories (user site included when enabled)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        dirs.append(site.getusersitepackages())
    return [d for d in dirs if Path(d).is_dir()]


def _venv_root(python: str) -> Path | None:
    root = Path(python).absolute().parent.parent
    return root if (root / "pyvenv.cfg").is_file() else None


def harness_paths(python: str) -> list[Path]:
    """What the harness needs read-only: prefixes, the interpreter, site directories, the xbench packages."""
    paths = [Path(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}]
    paths += [Path(os.path.realpath(python)).parent, Path(os.path.realpath(sys.executable)).parent]
    paths += [Path(d) for d in harness_site_dirs()]
    paths += [p for p in (_venv_root(python), _venv_root(sys.executable)) if p is not None]
    for name in HARNESS_PACKAGES:
        spec = importlib.util.find_spec(name)
        paths += [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return [p for p in paths if p.exists() and p != Path("/")]  # never the whole machine


def _covered(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def _binds(readonly: Iterable[Path], writable: Iterable[Path]) -> list[str]:
    """bwrap bind arguments, parents before children; a read-only path under a read-only bind is left out."""
    rw = {Path(os.path.realpath(p)) for p in writable}
    ro = {Path(os.path.realpath(p)) for p in readonly} - rw
    kept_ro = {p for p in ro if not _covered(p, ro - {p})}
    args: list[str] = []
    for path in sorted(kept_ro | rw, key=lambda p: (len(p.parts), str(p))):
        args += ["--bind" if path in rw else "--ro-bind", str(path), str(path)]
    return args


def _system_args(gpu: bool, sized_tmpfs: bool) -> list[str]:
    size = ["--size", str(PRIVATE_TMPFS_BYTES)] if sized_tmpfs else []
    args = ["--proc", "/proc", "--dev", "/dev", *size, "--tmpfs", "/tmp", *size, "--tmpfs", "/dev/shm"]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in SYSTEM_FILES:
        args += ["--ro-bind-try", path, path]
    if gpu:
        devices = sorted(d for d in os.listdir("/dev") if d.startswith("nvidia"))
        args += [a for d in devices for a in ("--dev-bind-try", f"/dev/{d}", f"/dev/{d}")]
        args += ["--ro-bind-try", "/sys", "/sys"]
    return args


@lru_cache(maxsize=4)
def _bwrap_info(bwrap: str) -> tuple[str, bool]:
    """(version, whether ``--size`` for tmpfs is supported); raises OSError when ``bwrap`` cannot execute."""
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    helptext = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30).stdout
    return version, "--size" in helptext


def sandbox_env(home: Path, tmp: Path, gpu: bool) -> dict[str, str]:
    """The environment a step runs with: a private HOME and TMPDIR, and only the thread and device settings.

    torch's compile caches (which torch creates in TMPDIR or HOME on its own) go beside them, so that
    what is left in HOME and TMPDIR is the entry's doing.
    """
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    caches = home.parent / "torch-caches"
    env |= {"TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor"), "TRITON_CACHE_DIR": str(caches / "triton")}
    if gpu and os.environ.get("LD_LIBRARY_PATH"):
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
    return env | {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "USER": "xbench",
        "LOGNAME": "xbench",
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _rss(pid: int, page: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
    except (OSError, ValueError, IndexError):  # ended meanwhile
        return 0


def _pss(pid: int, page: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return _rss(pid, page)


def tree_memory(root: int, exact_above: int | None = None) -> int:
    """Memory (bytes) of ``root`` and all its descendants: the sum of their resident sets.

    Above ``exact_above`` the sum is taken again with each process's proportional share of the pages
    it shares (``Pss``; forked workers share their parent's pages, which plain RSS counts in each), a
    slower read that is only needed near the limit.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    pids = [root, *process_tree(root)]
    total = sum(_rss(pid, page) for pid in pids)
    if exact_above is not None and total > exact_above:
        total = sum(_pss(pid, page) for pid in pids)
    return total


def _kill_tree(pid: int) -> None:
    """SIGKILL a running ``pid`` and its descendants (a sandbox dies with its outer ``bwrap``)."""
    for p in [pid, *process_tree(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _tail(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - OUTPUT_TAIL))
        return fh.read().decode(errors="replace")


@dataclass(frozen=True)
class Sandbox:
    """How entry code is run: sealed by ``bwrap`` (``enabled``) or not, with which limits, with the GPU or not."""

    enabled: bool = True
    gpu: bool = False
    limits: Limits = field(default_factory=Limits)
    bwrap: str = "bwrap"

    def check(self) -> None:
        """Raise :class:`SandboxUnavailable` unless a sandboxed Python starts here (nothing to check when disabled)."""
        if not self.enabled:
            return
        exe = shutil.which(self.bwrap)
        if exe is None:
            raise SandboxUnavailable(f"bubblewrap ('{self.bwrap}') is not installed; {INSTALL_HINT}")
        try:
            _bwrap_info(exe)
            probe = subprocess.run(
                self._argv([sys.executable, "-I", "-c", "pass"], Path("/"), (), ()),
                capture_output=True,
                text=True,
                timeout=60,
                env=sandbox_env(Path("/"), Path("/"), False),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bubblewrap ('{exe}') cannot run: {exc}; {INSTALL_HINT}") from exc
        if probe.returncode != 0:
            why = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
            raise SandboxUnavailable(f"bubblewrap ('{exe}') cannot run here ({why}); {INSTALL_HINT}")

    def describe(self) -> dict[str, Any]:
        """The sandbox used, for reports."""
        if not self.enabled:
            return {"kind": "none", "warning": NO_SANDBOX_WARNING, "limits": self.limits.to_dict()}
        exe = shutil.which(self.bwrap) or self.bwrap
        return {
            "kind": "bubblewrap",
            "bwrap": exe,
            "version": _bwrap_info(exe)[0],
            "network": "none",
            "writable": "the entry folder and a scratch folder (private HOME and TMPDIR); private /tmp",
            "readonly": "/usr, /lib*, /bin, linker files of /etc, the harness environment",
            "gpu": self.gpu,
            "limits": self.limits.to_dict(),
        }

    def summary(self) -> str:
        """One line naming the sandbox and its limits."""
        lim = self.limits
        limits = f"limits {gib(lim.memory_bytes)} memory, {lim.wall_seconds:g} s wall, {lim.cpu:g} s CPU per process"
        if not self.enabled:
            return f"WARNING: {NO_SANDBOX_WARNING}; {limits}"
        return f"{self.describe()['version']}: no network, entry and scratch writable, harness read-only; {limits}"

    def _argv(
        self, command: Sequence[str], cwd: Path, readonly: Iterable[Path], writable: Iterable[Path]
    ) -> list[str]:
        if not self.enabled:
            return list(command)
        exe = shutil.which(self.bwrap) or self.bwrap
        head = [exe, "--unshare-all", "--die-with-parent", "--new-session"]
        head += _system_args(self.gpu, _bwrap_info(exe)[1])
        ro = [*harness_paths(command[0]), *readonly]
        if self.gpu:
            ro += [Path(d) for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d and Path(d).is_dir()]
        return head + _binds(ro, writable) + ["--remount-ro", "/", "--chdir", str(cwd), *command]

    def run(
        self,
        python: str,
        args: Sequence[str],
        *,
        cwd: Path,
        scratch: Path,
        logs: Path,
        writable: Sequence[Path] = (),
        readonly: Sequence[Path] = (),
        name: str = "step",
    ) -> StepRun:
        """Run ``python -I -B <args>`` under the supervisor, sandboxed (unless disabled) and limited.

        ``scratch`` gets a fresh ``home`` and ``tmp`` (the step's HOME and TMPDIR, which must be left
        empty); ``cwd``, ``scratch`` and ``writable`` are writable, ``readonly`` is read-only; the
        output goes to ``logs/<name>.out`` / ``.err`` (outside the sandbox's view).
        """
        scratch = Path(os.path.realpath(scratch))
        home, tmp = scratch / "home", scratch / "tmp"
        for folder in (home, tmp):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        logs.mkdir(parents=True, exist_ok=True)
        watch = [str(home), str(tmp)] + (["/tmp", "/dev/shm"] if self.enabled else [])
        read_fd, write_fd = os.pipe()
        sup = [python, *PYTHON_FLAGS, "-m", "xbench.submission.supervisor", "--status-fd", str(write_fd)]
        sup += ["--cpu-seconds", str(self.limits.cpu)] + [a for w in watch for a in ("--watch", w)]
        if not self.gpu:  # the CUDA driver's mappings are not measured against RLIMIT_DATA here; the tree poll applies
            sup += ["--data-bytes", str(self.limits.memory_bytes)]
        cwd = Path(os.path.realpath(cwd))
        argv = self._argv([*sup, "--", python, *PYTHON_FLAGS, *args], cwd, readonly, [cwd, scratch, *writable])
        out_path, err_path = logs / f"{name}.out", logs / f"{name}.err"
        chunks: list[bytes] = []
        reader = threading.Thread(target=_read_all, args=(read_fd, chunks), daemon=True)
        start = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=cwd,
                    env=sandbox_env(home, tmp, self.gpu),
                    pass_fds=(write_fd,),
                    start_new_session=True,
                )
            finally:
                os.close(write_fd)
            reader.start()
            killed, peak, status, usage = self._watch(proc)
        wall = time.monotonic() - start
        reader.join(timeout=10)
        report = _parse_status(b"".join(chunks))
        return StepRun(
            returncode=proc.returncode,
            stdout=_tail(out_path),
            stderr=_tail(err_path),
            wall_s=wall,
            cpu_s=max(usage.ru_utime + usage.ru_stime, (report or {}).get("cpu_s", 0.0)),
            peak_rss_bytes=max(peak, usage.ru_maxrss * 1024, (report or {}).get("maxrss_bytes", 0)),
            killed=killed,
            status=report,
            limits=self.limits,
        )

    def _watch(self, proc: subprocess.Popen[bytes]) -> tuple[str | None, int, int, Any]:
        """Poll the tree's memory and the wall time until ``proc`` exits; (why killed, peak bytes, status, rusage)."""
        lim, start, peak, killed = self.limits, time.monotonic(), 0, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            rss = tree_memory(proc.pid, exact_above=lim.memory_bytes // 2)
            peak = max(peak, rss)
            if killed is None and rss > lim.memory_bytes:
                killed = f"memory: the process tree reached {gib(rss)}, over the {gib(lim.memory_bytes)} limit (killed)"
            elif killed is None and time.monotonic() - start > lim.wall_seconds:
                killed = f"wall time: still running after the {lim.wall_seconds:g} s limit (killed)"
            if killed:
                _kill_tree(proc.pid)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(POLL_S)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if not self.enabled:  # unconfined: end anything left in its process group
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return killed, peak, status, usage


def _read_all(fd: int, chunks: list[bytes]) -> None:
    with os.fdopen(fd, "rb") as fh:
        chunks.append(fh.read())


def _parse_status(raw: bytes) -> dict[str, Any] | None:
    try:
        report = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return report if isinstance(report, dict) and "returncode" in report else None

