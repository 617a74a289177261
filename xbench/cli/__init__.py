"""The ``xbench`` command line: a thin shell over the Python API.

Verbs: ``check`` (deep encoder checker), ``ls`` / ``describe`` (tasks), ``download`` (task data),
``run`` (embed + score), ``zoo ls`` (registered encoders).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from xbench import __version__

if TYPE_CHECKING:
    from xbench.encoder.contract import HarnessOptions


def _harness_options(args: argparse.Namespace) -> HarnessOptions:
    """The harness wrapper settings shared by `check` and `run`."""
    from xbench.encoder.contract import HarnessOptions

    return HarnessOptions(
        enabled=not args.raw,
        device=args.device,
        chunk_seconds=None if args.chunk_seconds <= 0 else args.chunk_seconds,
    )


def _cmd_check(args: argparse.Namespace) -> int:
    from xbench.encoder.contract import EncoderError, load_encoder
    from xbench.encoder.deep_check import DeepCheckOptions, deep_check

    try:
        encoder = load_encoder(args.encoder)
    except EncoderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    harness = _harness_options(args)
    options = DeepCheckOptions(long_seconds=args.long_seconds)
    report = deep_check(encoder, harness, options)
    report.encoder = args.encoder
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.text())
    return 0 if report.ok else 1


def _cmd_run(args: argparse.Namespace) -> int:
    from xbench.encoder.contract import EncoderError
    from xbench.pipeline.run import RunOptions, evaluate, summary_table
    from xbench.suites.offline import SUITES, SuiteError, suite_tasks
    from xbench.taskspec.registry import get_task, load_tasks

    if bool(args.tasks) == bool(args.suite):
        print("error: give either --tasks NAME... or --suite NAME", file=sys.stderr)
        return 2
    try:
        if args.tasks:
            tasks = [get_task(name, args.tasks_dir) for name in args.tasks]
        elif args.suite in SUITES:
            tasks = suite_tasks(args.suite, args.tasks_dir, args.data_root)
        elif args.suite == "all":
            tasks = [t for t in load_tasks(args.tasks_dir).values() if not t.disabled]
        else:
            print(f"error: unknown suite {args.suite!r}; choose from {sorted(SUITES)} or 'all'", file=sys.stderr)
            return 2
    except (LookupError, SuiteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    harness = _harness_options(args)
    opts = RunOptions(
        tracks=tuple(t.strip() for t in args.track.split(",") if t.strip()),
        protocol=args.protocol,
        data_root=args.data_root,
        cache_root=args.cache_dir,
        output_dir=args.output,
        device=args.device,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        cache_dtype=args.cache_dtype,
        bootstrap_rounds=args.bootstrap,
        harness=harness,
        text_tokenizer=args.text_tokenizer,
        asr_decoder=args.asr_decoder,
    )
    try:
        frame = evaluate(args.encoder, tasks, opts)
    except (EncoderError, FileNotFoundError, FileExistsError, NotImplementedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary_table(frame))
    if not frame.empty:
        from xbench.report.plots import write_plots

        write_plots(frame, Path(args.output) / frame.encoder.iloc[0] / args.protocol / "plots")
    print(f"results: {args.output}")
    return 0


def _cmd_zoo_ls(args: argparse.Namespace) -> int:
    from xbench.encoder.contract import zoo_entry_points
    from xbench.encoders.registry import all_cards

    cards = all_cards()
    rows = []
    for name, ep in sorted(zoo_entry_points().items()):
        card = cards.get(name)
        row = {"name": name, "factory": ep.value}
        if card is not None:
            row.update(card.to_dict())
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':30s} {'family':12s} {'sr':>6s} {'hop ms':>7s} {'dim':>5s} {'params':>12s}  extra")
    for row in rows:
        params = "" if row.get("parameters") is None else f"{row['parameters']:,}"
        print(
            f"{row['name']:30s} {row.get('family', '-'):12s} {row.get('sampling_rate', ''):>6} "
            f"{row.get('hop_size_in_ms', ''):>7} {row.get('output_dim', ''):>5} {params:>12s}  {row.get('extra') or ''}"
        )
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

    from xbench.data.download import add_download_command
    from xbench.report.leaderboard import add_report_commands
    from xbench.suites.offline import add_suite_command
    from xbench.taskspec.listing import add_task_commands

    add_task_commands(sub)
    add_download_command(sub)
    add_suite_command(sub)
    add_report_commands(sub)

    run = sub.add_parser(
        "run",
        help="embed and score an encoder on tasks",
        description="Embed every split once into the cache, then score the MLP and kNN tracks from the cache.",
    )
    run.add_argument("--encoder", required=True, help="path/to/encoder.py[:ClassName], zoo name or module:Name")
    run.add_argument("--tasks", nargs="+", help="task names")
    run.add_argument("--suite", help="a built suite ('offline', 'offline-small'), or 'all' registered tasks")
    run.add_argument("--tasks-dir", default=None, help="also load task declarations from DIR")
    run.add_argument("--track", default="mlp,knn", help="comma-separated tracks (default: mlp,knn)")
    run.add_argument("--protocol", choices=("xbench", "xares"), default="xbench", help="scoring protocol")
    run.add_argument("--device", default="cpu", help="device for the encoder and probes")
    run.add_argument("--batch-size", type=int, default=None, help="encode batch size (default: per task)")
    run.add_argument("--output", default="results/runs", help="results folder (default: results/runs)")
    run.add_argument("--overwrite", choices=("never", "missing", "always"), default="missing")
    run.add_argument("--data-root", default=None, help="data root (default: $XBENCH_DATA)")
    run.add_argument("--cache-dir", default=None, help="embedding cache (default: $XBENCH_CACHE)")
    run.add_argument("--cache-dtype", choices=("float16", "float32"), default="float16")
    run.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the 95%% intervals")
    run.add_argument("--chunk-seconds", type=float, default=10.0, help="harness chunk length (s); 0 disables")
    run.add_argument("--raw", action="store_true", help="switch the harness wrapper off (call as X-ARES does)")
    run.add_argument(
        "--text-tokenizer", default=None, help="contrastive tasks: bert-base-uncased vocab.txt, folder or hub id"
    )
    run.add_argument("--asr-decoder", default=None, help="asr tasks: causal-LM folder or hub id (Qwen/Qwen2.5-0.5B)")
    run.set_defaults(func=_cmd_run)

    zoo = sub.add_parser("zoo", help="the encoder zoo")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    zoo_ls = zoo_sub.add_parser("ls", help="list registered encoders (entry-point group xbench.encoders)")
    zoo_ls.add_argument("--json", action="store_true", help="print the cards as JSON")
    zoo_ls.set_defaults(func=_cmd_zoo_ls)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xbench`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
