"""``xbench check``: X-ARES's encoder checks plus the deep checks (:mod:`xbench.encoder.deep_check`)."""

from __future__ import annotations

import argparse
from typing import Any

from xbench.cli.common import (
    add_encoder,
    add_encoder_options,
    add_harness,
    add_json,
    add_long_seconds,
    encoder_spec,
    harness_options,
    print_json,
    user_errors,
)


def register(subparsers: Any) -> None:
    """Add ``check``."""
    check = subparsers.add_parser(
        "check",
        help="check that an encoder is fit to benchmark",
        description="Run X-ARES 0.1.3's ten encoder checks plus xbench's deep checks. Exit 1 on any failure.",
    )
    add_encoder(check)
    add_encoder_options(check)
    add_json(check, "print the report as JSON")
    add_harness(check, "device to run the encoder on (default: cpu)")
    add_long_seconds(check)
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from xbench.encoder.contract import EncoderError, load_encoder
    from xbench.encoder.deep_check import DeepCheckOptions, deep_check

    harness = harness_options(args)
    with user_errors(EncoderError):
        encoder = load_encoder(encoder_spec(args))
    report = deep_check(encoder, harness, DeepCheckOptions(long_seconds=args.long_seconds))
    report.encoder = args.encoder
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.text())
    return 0 if report.ok else 1
