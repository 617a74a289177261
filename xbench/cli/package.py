"""``xbench package``: check an encoder and bundle it as a submission zip (:mod:`xbench.submission.package`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from xbench.cli.common import add_long_seconds, add_sandbox, sandbox_limits, user_errors


def register(subparsers: Any) -> None:
    """Add ``package``."""
    pack = subparsers.add_parser(
        "package",
        help="check an encoder and bundle it as a submission zip",
        description="Run the deep checker in a bubblewrap sandbox (refusing on failure), then zip the encoder "
        "file, the local modules it imports, requirements.txt, weights or a checksum-verified download script, "
        "metadata, the checker report and a README; prints a size report. Exit 1 when the encoder fails the "
        "checker, 2 when the sandbox cannot run (see --no-sandbox).",
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
    add_long_seconds(pack)
    add_sandbox(pack)
    pack.set_defaults(func=_package)


def _package(args: argparse.Namespace) -> int:
    from xbench.submission.manifest import SubmissionError
    from xbench.submission.package import PackageOptions, package
    from xbench.submission.sandbox import NO_SANDBOX_WARNING, SandboxUnavailable

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
        sandbox=not args.no_sandbox,
        limits=sandbox_limits(args),
    )
    if args.no_sandbox:
        print(f"WARNING: {NO_SANDBOX_WARNING}", file=sys.stderr)
    with user_errors(SandboxUnavailable), user_errors(SubmissionError, code=1):
        res = package(args.encoder, args.out, opts)
    for warning in res.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(res.size_report())
    return 0
