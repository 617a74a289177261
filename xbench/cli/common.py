"""What the verb modules share: the error convention and the arguments several verbs take.

A verb handler returns its exit code, or raises :class:`CliError` for a user error, which
:func:`xbench.cli.main` prints as one ``error:`` line (exit 2 unless the verb chose another code).
This module imports only the standard library and :mod:`xbench.core.enums`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from xbench.core.enums import parse_tracks

if TYPE_CHECKING:
    from xbench.encoder.contract import HarnessOptions
    from xbench.submission.sandbox import Limits

__all__ = [
    "CliError",
    "add_data_root",
    "add_encoder",
    "add_encoder_options",
    "add_harness",
    "add_json",
    "add_long_seconds",
    "add_sandbox",
    "add_tasks_dir",
    "encoder_spec",
    "harness_options",
    "print_json",
    "sandbox_limits",
    "tracks_arg",
    "user_errors",
]

USAGE_ERROR = 2


class CliError(Exception):
    """A user error: printed as ``error: <message>``, exit ``code``."""

    def __init__(self, message: str, code: int = USAGE_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _message(exc: BaseException) -> str:
    # str(KeyError("x")) quotes the text; a lookup error's first argument is the message
    if isinstance(exc, LookupError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


@contextmanager
def user_errors(*kinds: type[BaseException], code: int = USAGE_ERROR) -> Iterator[None]:
    """Re-raise the listed exceptions (a stage's user errors) as :class:`CliError` with ``code``."""
    try:
        yield
    except kinds as exc:
        raise CliError(_message(exc), code) from exc


def tracks_arg(text: str) -> tuple[str, ...]:
    """``argparse`` type of ``--track``: comma-separated track names, checked while parsing."""
    try:
        return parse_tracks(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_encoder(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--encoder`` (required)."""
    parser.add_argument(
        "--encoder",
        required=True,
        help=help or "path/to/encoder.py[:ClassName], zoo name[=CHECKPOINT], hf:ORG/NAME[@REVISION], hf:/folder "
        "or module:Name",
    )


def add_encoder_options(parser: argparse.ArgumentParser, name: bool = False) -> None:
    """``--weights``, ``--layer``, ``--trust-remote-code`` (and ``--name``): how ``--encoder`` is built."""
    parser.add_argument(
        "--weights",
        metavar="PATH",
        default=None,
        help="a checkpoint for a zoo entry (shapes checked against its card) or a family (dasheng, beats, "
        "captionstew: shape from the file); its layout is recognised",
    )
    parser.add_argument(
        "--layer",
        metavar="N|last|mean",
        default=None,
        help="hf: models and transformers zoo entries: hidden state N (0 = the input to the first layer), the last "
        "(default) or the mean of all",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="hf: models whose repository code must run in this process (e.g. MERT); only for code you trust",
    )
    if name:
        parser.add_argument(
            "--name", default=None, help="the encoder's name in results and leaderboards (default: what --encoder says)"
        )


def encoder_spec(args: argparse.Namespace) -> Any:
    """``--encoder`` as given, or an :class:`~xbench.encoder.spec.EncoderSpec` carrying ``--weights``, ``--layer``,
    ``--trust-remote-code``, ``--name`` or a ``NAME=CHECKPOINT`` form; a bad combination is a :class:`CliError`."""
    from xbench.encoder.contract import EncoderError
    from xbench.encoder.spec import EncoderSpec

    with user_errors(EncoderError):
        spec = EncoderSpec.parse(
            args.encoder, args.weights, args.layer, args.trust_remote_code, getattr(args, "name", None)
        )
    plain = spec == EncoderSpec(args.encoder)
    return args.encoder if plain else spec


def add_tasks_dir(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--tasks-dir DIR``: a folder of extra task declarations."""
    parser.add_argument(
        "--tasks-dir", metavar="DIR", default=None, help=help or "also load task declarations (*.py, *.json) from DIR"
    )


def add_data_root(parser: argparse.ArgumentParser) -> None:
    """``--data-root DIR``."""
    parser.add_argument(
        "--data-root", metavar="DIR", default=None, help="data root (default: $XBENCH_DATA or ~/.cache/xbench/data)"
    )


def add_json(parser: argparse.ArgumentParser, help: str = "print JSON") -> None:
    """``--json``: machine-readable output."""
    parser.add_argument("--json", action="store_true", help=help)


def add_long_seconds(parser: argparse.ArgumentParser) -> None:
    """``--long-seconds``: length of the deep checker's long-input check."""
    parser.add_argument("--long-seconds", type=float, default=600.0, help="length of the long-input check (s)")


def add_sandbox(parser: argparse.ArgumentParser) -> None:
    """``--no-sandbox``, ``--memory-limit``, ``--timeout``, ``--cpu-seconds``: how the entry's code is confined."""
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run the entry's code WITHOUT the bubblewrap sandbox (unconfined: only for code you trust)",
    )
    parser.add_argument(
        "--memory-limit", type=float, default=None, metavar="GIB", help="memory of the process tree (default: 12 GiB)"
    )
    parser.add_argument("--timeout", type=float, default=None, metavar="S", help="wall time per step (default: 1 h)")
    parser.add_argument(
        "--cpu-seconds", type=float, default=None, metavar="S", help="CPU time per process (default: timeout x cores)"
    )


def sandbox_limits(args: argparse.Namespace) -> Limits:
    """The :class:`~xbench.submission.sandbox.Limits` of ``--memory-limit``/``--timeout``/``--cpu-seconds``."""
    from xbench.submission.sandbox import Limits

    given = {}
    for flag, field, value in (
        ("--memory-limit", "memory_bytes", None if args.memory_limit is None else int(args.memory_limit * 2**30)),
        ("--timeout", "wall_seconds", args.timeout),
        ("--cpu-seconds", "cpu_seconds", args.cpu_seconds),
    ):
        if value is not None and not value > 0:
            raise CliError(f"{flag} must be positive")
        if value is not None:
            given[field] = value
    return Limits(**given)


def add_harness(parser: argparse.ArgumentParser, device_help: str) -> None:
    """``--device``, ``--chunk-seconds`` and ``--raw``: the harness wrapper settings (see :func:`harness_options`)."""
    parser.add_argument("--device", default="cpu", help=device_help)
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=10.0,
        help="harness chunk length (s); 0 disables; run --protocol xares passes whole clips",
    )
    parser.add_argument("--raw", action="store_true", help="switch the harness wrapper off (call as X-ARES does)")


def harness_options(args: argparse.Namespace) -> HarnessOptions:
    """The :class:`~xbench.encoder.contract.HarnessOptions` of ``--device``/``--chunk-seconds``/``--raw``;
    a device torch cannot use here (``--device cuda`` without CUDA) is a :class:`CliError`."""
    from xbench.core.devices import check_device
    from xbench.encoder.contract import HarnessOptions

    with user_errors(ValueError):
        check_device(args.device)
    return HarnessOptions(
        enabled=not args.raw,
        device=args.device,
        chunk_seconds=None if args.chunk_seconds <= 0 else args.chunk_seconds,
    )


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON (non-JSON values as ``str``)."""
    import json

    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
