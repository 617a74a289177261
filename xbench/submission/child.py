"""The steps that import a submission's code, run as ``python -I -B -m xbench.submission.child STEP`` in a sandbox.

``requirements FILE`` prints, as JSON, the pinned requirements whose installed version differs.
``check --spec ...`` loads the encoder, encodes one batch the size a run encodes (:func:`run_batch`,
measuring GPU memory on CUDA) and runs the deep checker. ``task --spec ... --tasks-dir ...`` runs the
small task. Both print one line :data:`RESULT_MARK` + JSON; errors are reported in it, not raised.
:func:`run_child` is the parent's side: it runs a step in a :class:`~xbench.submission.sandbox.Sandbox`
and turns what happened into one verdict line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from xbench.submission.sandbox import Sandbox, StepRun

RESULT_MARK = "XBENCH-VERIFY-RESULT "


def run_batch_shape() -> tuple[int, float]:
    """(clips, seconds) of the batch a run encodes: the task default ``batch_size_encode`` × the harness chunk."""
    from xbench.encoder.contract import HarnessOptions
    from xbench.taskspec.config import TaskConfig

    clips = next(f.default for f in dataclasses.fields(TaskConfig) if f.name == "batch_size_encode")
    return int(clips), float(HarnessOptions().chunk_seconds or 10.0)


def run_batch(encoder: torch.nn.Module, device: str) -> dict[str, Any]:
    """Encode one run-sized batch through the harness; on CUDA, its GPU memory (no peak reset before or during)."""
    from xbench.encoder.contract import HarnessedEncoder, HarnessOptions
    from xbench.encoder.deep_check import probe_signal
    from xbench.submission.memory import measure_gpu_memory

    clips, seconds = run_batch_shape()
    harness = HarnessedEncoder(encoder, HarnessOptions(device=device))
    wave = probe_signal(round(seconds * harness.sampling_rate), harness.sampling_rate, batch=clips)
    out: dict[str, Any] = {"clips": clips, "seconds": seconds}
    start = time.perf_counter()
    if device.startswith("cuda"):
        out["gpu"] = measure_gpu_memory(lambda: harness(wave), device).to_dict()
    else:
        harness(wave)
    out["wall_s"] = time.perf_counter() - start
    return out


def _describe(encoder: torch.nn.Module) -> dict[str, Any]:
    module = sys.modules.get(type(encoder).__module__)
    info: dict[str, Any] = {
        "class": type(encoder).__name__,
        "module_file": str(Path(getattr(module, "__file__", None) or "").resolve()),
        "parameters": int(sum(p.numel() for p in encoder.parameters())),
    }
    for name, kind in (("sampling_rate", int), ("hop_size_in_ms", float), ("output_dim", int)):
        try:
            info[name] = kind(getattr(encoder, name))
        except (AttributeError, TypeError, ValueError):
            info[name] = None
    return info


def _error(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def check(args: argparse.Namespace) -> dict[str, Any]:
    """Load, one run-sized batch, the deep checker."""
    import torch

    from xbench.encoder.contract import HarnessOptions, load_encoder
    from xbench.encoder.deep_check import DeepCheckOptions, deep_check

    out: dict[str, Any] = {"python": sys.executable, "torch": torch.__version__}
    try:
        encoder = load_encoder(args.spec)
        out["encoder"] = _describe(encoder)
        try:
            out["batch"] = run_batch(encoder, args.device)
        except Exception as exc:  # the checker below says what is wrong with the encoder
            out["batch"] = {"error": _error(exc)}
        start = time.perf_counter()
        report = deep_check(encoder, HarnessOptions(device=args.device), DeepCheckOptions(long_seconds=args.long))
        report.encoder = args.spec
        out["check"] = report.to_dict()
        out["check_s"] = time.perf_counter() - start
    except (Exception, SystemExit) as exc:  # reported to the parent, which fails the step
        out["error"] = _error(exc)
    return out


def task(args: argparse.Namespace) -> dict[str, Any]:
    """Load and run the small task; its score per track."""
    from xbench.submission.small_task import small_task_scores

    out: dict[str, Any] = {}
    try:
        out["scores"] = small_task_scores(args.spec, args.tasks_dir, args.work, args.device)
    except (Exception, SystemExit) as exc:
        out["error"] = _error(exc)
    return out


@dataclass
class ChildRun:
    """A sandboxed step as the parent sees it: the run, the child's result, and one verdict line if it failed."""

    run: StepRun
    result: dict[str, Any]
    failure: str | None  # the entry's fault: a limit, a leftover, no result, an error
    tool_error: str | None  # the sandbox's fault


def run_child(sandbox: Sandbox, python: str, step_args: Sequence[str], **where: Any) -> ChildRun:
    """Run ``python -I -B -m xbench.submission.child STEP_ARGS`` with ``sandbox.run(**where)``."""
    from xbench.submission.memory import gib

    run = sandbox.run(python, ["-m", "xbench.submission.child", *step_args], **where)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    try:
        result = json.loads(lines[-1][len(RESULT_MARK) :]) if lines else {}
    except ValueError:
        result = {}
    failure = run.problem
    if failure is None and not result:
        tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
        failure = f"exited with code {run.returncode} and no result: {tail[:300]}"
    if failure is None and "error" in result:
        failure = result["error"][:500]
        if "MemoryError" in failure or "can't allocate memory" in failure:
            failure += f" (over the {gib(sandbox.limits.memory_bytes)} memory limit)"
    return ChildRun(run, result, " ".join(failure.split()) if failure else None, run.tool_error)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m xbench.submission.child`` (internal; use ``xbench verify-submission``)."""
    parser = argparse.ArgumentParser(prog="python -m xbench.submission.child")
    steps = parser.add_subparsers(dest="step", required=True)
    reqs = steps.add_parser("requirements")
    reqs.add_argument("file")
    for name in ("check", "task"):
        step = steps.add_parser(name)
        step.add_argument("--spec", required=True)
        step.add_argument("--device", default="cpu")
        if name == "check":
            step.add_argument("--long", type=float, default=600.0)
        else:
            step.add_argument("--work", required=True)
            step.add_argument("--tasks-dir", required=True)
    args = parser.parse_args(argv)
    if args.step == "requirements":
        from xbench.submission.imports import mismatched_requirements

        print(json.dumps(mismatched_requirements(Path(args.file).read_text().split())))
        return 0
    import torch

    torch.set_num_threads(int(os.environ.get("XBENCH_NUM_THREADS", torch.get_num_threads())))
    result = check(args) if args.step == "check" else task(args)
    print(RESULT_MARK + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
