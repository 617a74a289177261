"""Command line of the submission stage: ``xbench package`` and ``xbench verify-submission``.

The work is done by :mod:`xbench.submission.package` (build the zip), :mod:`xbench.submission.verify`
(check it in a fresh venv, through :mod:`xbench.submission.child`), with the shared zip schema in
:mod:`xbench.submission.manifest` and the import scan in :mod:`xbench.submission.imports`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from xbench.submission.manifest import SubmissionError
from xbench.submission.package import PackageOptions, package
from xbench.submission.verify import VerifyOptions, verify_submission


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
