"""What ``xbench verify-submission`` runs inside the submission's venv (``python -I -m xbench.submission.child``).

``requirements FILE`` prints, as JSON, the pinned requirements whose installed version differs.
``run --spec ... --work ...`` runs the deep checker and, with ``--tasks-dir``, the small task, and prints
one line :data:`RESULT_MARK` + JSON: the interpreter, where the encoder was imported from, the check
report, the task scores, timings and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULT_MARK = "XBENCH-VERIFY-RESULT "


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Checker, optional small task, peak memory; errors are reported in the result, not raised."""
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
            from xbench.submission.small_task import TASK_NAME
            from xbench.taskspec.registry import get_task

            start = time.perf_counter()
            frame = evaluate(
                encoder,
                [get_task(TASK_NAME, args.tasks_dir)],
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
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m xbench.submission.child`` (internal; use ``xbench verify-submission``)."""
    parser = argparse.ArgumentParser(prog="python -m xbench.submission.child")
    steps = parser.add_subparsers(dest="step", required=True)
    reqs = steps.add_parser("requirements")
    reqs.add_argument("file")
    child = steps.add_parser("run")
    child.add_argument("--spec", required=True)
    child.add_argument("--work", required=True)
    child.add_argument("--device", default="cpu")
    child.add_argument("--long", type=float, default=600.0)
    child.add_argument("--tasks-dir", default=None)
    args = parser.parse_args(argv)
    if args.step == "requirements":
        from xbench.submission.imports import mismatched_requirements

        print(json.dumps(mismatched_requirements(Path(args.file).read_text().split())))
    else:
        print(RESULT_MARK + json.dumps(run(args), default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
