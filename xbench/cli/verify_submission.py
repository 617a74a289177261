"""``xbench verify-submission``: verify a submission zip, its code sandboxed (:mod:`xbench.submission.verify`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from xbench.cli.common import CliError, add_json, add_long_seconds, add_sandbox, print_json, sandbox_limits, user_errors


def register(subparsers: Any) -> None:
    """Add ``verify-submission``."""
    ver = subparsers.add_parser(
        "verify-submission",
        help="verify a submission zip, its code sealed in a sandbox",
        description="Validate metadata.json's paths, unpack, verify every file's SHA-256, create a fresh venv "
        "layered on this environment's packages (offline), then run the checker and a small synthetic task "
        "(four tones; both tracks must reach a floor) in a bubblewrap sandbox: no network, private /tmp and HOME, "
        "only the entry and a scratch folder writable, memory, CPU and wall-time limits. Reports peak memory "
        "against the challenge limits (12 GiB RAM; 15 GiB usable on a 16 GB T4). Exit 0 verified, 1 rejected "
        "(the reason on the last line), 2 the tool could not verify (e.g. bwrap cannot run).",
    )
    ver.add_argument("zip", help="the submission zip")
    ver.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    add_long_seconds(ver)
    ver.add_argument("--find-links", action="append", help="install requirements offline from this folder")
    ver.add_argument("--no-task", action="store_true", help="skip the small synthetic task")
    ver.add_argument("--keep", action="store_true", help="keep the temporary folder")
    add_sandbox(ver)
    add_json(ver, "print the result as JSON")
    ver.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    from xbench.submission.sandbox import NO_SANDBOX_WARNING, SandboxUnavailable
    from xbench.submission.verify import VerifyOptions, verify_submission

    if not Path(args.zip).is_file():
        raise CliError(f"{args.zip}: no such file")
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
        sandbox=not args.no_sandbox,
        limits=sandbox_limits(args),
    )
    if args.no_sandbox:
        print(f"WARNING: {NO_SANDBOX_WARNING}", file=sys.stderr)
    with user_errors(SandboxUnavailable):
        res = verify_submission(args.zip, opts)
    if args.json:
        print_json(res.to_dict())
    else:
        print(res.text())
    if args.keep and res.workdir:
        print(f"kept: {res.workdir}", file=sys.stderr)
    return res.exit_code
