"""The ``xbench`` command line: one thin module per verb over the Python API.

Each module in :data:`VERBS` has ``register(subparsers)``, which adds its verb(s) with a handler
``func(args) -> exit code``; adding a verb means adding its module here. Building the parser imports no
stage code (so ``xbench --help`` does not import torch): handlers import what they need when they run.

Exit codes: 0 success, 1 a negative verdict (a failed check, data still missing) or an unexpected
failure, 2 a user error (one ``error:`` line; argparse's own errors too). ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from xbench import __version__
from xbench.cli.common import CliError

__all__ = ["VERBS", "build_parser", "main"]

# module of xbench.cli -> verbs it registers, in the order `xbench --help` lists them
VERBS = (
    "run",  # run
    "check",  # check
    "tasks",  # ls, describe
    "download",  # download
    "suite",  # suite build, suite path
    "leaderboard",  # leaderboard
    "compare",  # compare
    "package",  # package
    "verify_submission",  # verify-submission
    "zoo",  # zoo ls
    "pretrain",  # pretrain
)


def _add_global_options(parser: argparse.ArgumentParser, default: object) -> None:
    """``-v``/``--debug``; on sub-commands with ``default=SUPPRESS``, so ``xbench run ... --debug`` works too."""
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log at INFO level")
    parser.add_argument(
        "--debug", action="store_true", default=default, help="show the traceback of an error (and log at DEBUG)"
    )


def _sub_commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` (nested sub-commands included)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += [child, *_sub_commands(child)]
    return found


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all verbs (imports only the verb modules, not the stages)."""
    parser = argparse.ArgumentParser(prog="xbench", description="X-ARES-compatible audio encoder benchmark")
    parser.add_argument("--version", action="version", version=f"xbench {__version__}")
    _add_global_options(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="VERB")
    for name in VERBS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for child in _sub_commands(parser):
        _add_global_options(child, argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xbench`` console script and ``python -m xbench``."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except CliError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
