"""``xbench verify-submission``: check a submission zip in a fresh venv (:mod:`xbench.submission.verify`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from xbench.cli.common import add_json, add_long_seconds, print_json


def register(subparsers: Any) -> None:
    """Add ``verify-submission``."""
    ver = subparsers.add_parser(
        "verify-submission",
        help="verify a submission zip in a fresh venv",
        description="Unpack, verify checksums, create a fresh venv layered on this environment's packages "
        "(offline), run the checker and a small synthetic task there, and report peak memory against the "
        "challenge limits (12 GiB RAM, 16 GiB GPU). Exit 1 when a step fails.",
    )
    ver.add_argument("zip", help="the submission zip")
    ver.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    add_long_seconds(ver)
    ver.add_argument("--find-links", action="append", help="install requirements offline from this folder")
    ver.add_argument("--no-task", action="store_true", help="skip the small synthetic task")
    ver.add_argument("--keep", action="store_true", help="keep the temporary folder")
    add_json(ver, "print the result as JSON")
    ver.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    from xbench.submission.verify import VerifyOptions, verify_submission

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
    if args.json:
        print_json(res.to_dict())
    else:
        print(res.text())
    if args.keep and res.workdir:
        print(f"kept: {res.workdir}", file=sys.stderr)
    return 0 if res.ok else 1
