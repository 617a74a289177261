"""``xbench compare A B``: per-task differences of two runs with paired bootstrap intervals (report.compare)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from xbench.cli.common import add_json, print_json, user_errors
from xbench.core.enums import Protocol, choices


def register(subparsers: Any) -> None:
    """Add ``compare``."""
    cmp = subparsers.add_parser(
        "compare",
        help="per-task differences of two runs with paired bootstrap intervals",
        description="B − A per task and track, in normalised score, with a paired bootstrap 95% interval "
        "(the same test items resampled for both encoders; needs the runs' predictions.npz files). "
        "A difference whose interval contains 0 is reported as within noise.",
    )
    cmp.add_argument("a", help="run folder of encoder A (<output>/<encoder>/<protocol>, or above it)")
    cmp.add_argument("b", help="run folder of encoder B")
    cmp.add_argument(
        "--protocol", choices=choices(Protocol), default=None, help="pick this protocol when a folder holds several"
    )
    cmp.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds (default 1000)")
    add_json(cmp)
    cmp.add_argument("--out", default=None, help="also write the per-task table as CSV")
    cmp.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    from xbench.report.compare import CompareError, compare_runs

    with user_errors(CompareError):
        result = compare_runs(args.a, args.b, protocol=args.protocol, rounds=args.bootstrap)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.text())
    if args.out:
        import pandas as pd

        from xbench.core.atomic_io import atomic_write_bytes

        table = pd.DataFrame([t.to_dict() for t in result.tasks]).to_csv(index=False)
        atomic_write_bytes(Path(args.out), table.encode("utf-8"))
    return 0
