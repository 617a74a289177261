"""The ``xbench`` command line: a thin shell over the Python API.

Verbs: ``check`` (deep encoder checker), ``zoo ls`` (registered encoders).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from xbench import __version__


def _cmd_check(args: argparse.Namespace) -> int:
    from xbench.deep_check import DeepCheckOptions, deep_check
    from xbench.encoder_contract import EncoderError, HarnessOptions, load_encoder

    try:
        encoder = load_encoder(args.encoder)
    except EncoderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    harness = HarnessOptions(
        enabled=not args.raw,
        device=args.device,
        chunk_seconds=None if args.chunk_seconds <= 0 else args.chunk_seconds,
    )
    options = DeepCheckOptions(long_seconds=args.long_seconds)
    report = deep_check(encoder, harness, options)
    report.encoder = args.encoder
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.text())
    return 0 if report.ok else 1


def _cmd_zoo_ls(args: argparse.Namespace) -> int:
    from xbench.encoder_contract import zoo_entry_points

    for name, ep in sorted(zoo_entry_points().items()):
        print(f"{name:24s} {ep.value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all verbs."""
    parser = argparse.ArgumentParser(prog="xbench", description="X-ARES-compatible audio encoder benchmark")
    parser.add_argument("--version", action="version", version=f"xbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser(
        "check",
        help="check that an encoder is fit to benchmark",
        description="Run X-ARES 0.1.3's ten encoder checks plus xbench's deep checks. Exit 1 on any failure.",
    )
    check.add_argument("--encoder", required=True, help="path/to/encoder.py[:ClassName], zoo name or module:Name")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--device", default="cpu", help="device to run the encoder on (default: cpu)")
    check.add_argument("--long-seconds", type=float, default=600.0, help="length of the long-input check (s)")
    check.add_argument("--chunk-seconds", type=float, default=10.0, help="harness chunk length (s); 0 disables")
    check.add_argument("--raw", action="store_true", help="switch the harness wrapper off (call as X-ARES does)")
    check.set_defaults(func=_cmd_check)

    zoo = sub.add_parser("zoo", help="the encoder zoo")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    zoo_ls = zoo_sub.add_parser("ls", help="list registered encoders (entry-point group xbench.encoders)")
    zoo_ls.set_defaults(func=_cmd_zoo_ls)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xbench`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
