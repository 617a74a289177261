"""``xbench run``: embed an encoder's audio once into the cache, then score the tracks (:mod:`xbench.pipeline.run`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from xbench.cli.common import (
    CliError,
    add_encoder,
    add_harness,
    add_tasks_dir,
    harness_options,
    tracks_arg,
    user_errors,
)
from xbench.core.enums import CacheDtype, Overwrite, Protocol, Track, choices
from xbench.suites.offline import SUITES


def register(subparsers: Any) -> None:
    """Add ``run``."""
    run = subparsers.add_parser(
        "run",
        help="embed and score an encoder on tasks",
        description="Embed every split once into the cache, then score the MLP and kNN tracks from the cache. "
        "Options are checked before anything is loaded.",
    )
    add_encoder(run)
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--tasks", nargs="+", metavar="TASK", help="task names")
    which.add_argument(
        "--suite", help=f"a built suite ({', '.join(SUITES)}; see `xbench suite`), or 'all' registered tasks"
    )
    add_tasks_dir(run)
    run.add_argument(
        "--track",
        type=tracks_arg,
        default=",".join(choices(Track)),
        help=f"comma-separated tracks out of {', '.join(choices(Track))} (default: all)",
    )
    run.add_argument("--protocol", choices=choices(Protocol), default=Protocol.XBENCH.value, help="scoring protocol")
    add_harness(run, "device for the encoder and probes")
    run.add_argument("--batch-size", type=int, default=None, help="encode batch size (default: per task)")
    run.add_argument("--output", default="results/runs", help="results folder (default: results/runs)")
    run.add_argument(
        "--overwrite",
        choices=choices(Overwrite),
        default=Overwrite.MISSING.value,
        help="saved results: keep (never), reuse when their settings match (missing, default), recompute (always)",
    )
    run.add_argument("--data-root", metavar="DIR", default=None, help="data root (default: $XBENCH_DATA)")
    run.add_argument("--cache-dir", metavar="DIR", default=None, help="embedding cache (default: $XBENCH_CACHE)")
    run.add_argument("--cache-dtype", choices=choices(CacheDtype), default=CacheDtype.FLOAT16.value)
    run.add_argument(
        "--verify-data",
        action="store_true",
        help="first recheck every data file against the checksums `xbench download` recorded; refuse on a mismatch",
    )
    run.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the 95%% intervals")
    run.add_argument(
        "--probe-seeds",
        type=int,
        default=None,
        metavar="N",
        help="xbench protocol: the MLP score is the mean over N probe seeds, trained together (default 5); "
        "--protocol xares trains one probe",
    )
    run.add_argument(
        "--text-tokenizer", default=None, help="contrastive tasks: bert-base-uncased vocab.txt, folder or hub id"
    )
    run.add_argument("--asr-decoder", default=None, help="asr tasks: causal-LM folder or hub id (Qwen/Qwen2.5-0.5B)")
    run.set_defaults(func=_run)


def _tasks(args: argparse.Namespace) -> list[Any]:
    """The task declarations named by ``--tasks`` or ``--suite`` (declarations only; no data is read)."""
    from xbench.suites.offline import SuiteError, suite_tasks
    from xbench.taskspec.config import TaskConfigError
    from xbench.taskspec.registry import get_task, load_tasks

    with user_errors(LookupError, SuiteError, TaskConfigError):
        if args.tasks:
            return [get_task(name, args.tasks_dir) for name in args.tasks]
        if args.suite in SUITES:
            return suite_tasks(args.suite, args.tasks_dir, args.data_root)
        if args.suite == "all":
            return [t for t in load_tasks(args.tasks_dir).values() if not t.disabled]
    raise CliError(f"unknown suite {args.suite!r}; choose from {', '.join(SUITES)} or 'all'")


def _run(args: argparse.Namespace) -> int:
    from xbench.data.download import DataVerificationError
    from xbench.data.shards import ShardError
    from xbench.encoder.contract import EncoderError
    from xbench.pipeline.run import RunOptions, evaluate, summary_table

    with user_errors(ValueError):
        opts = RunOptions(
            tracks=args.track,
            protocol=args.protocol,
            data_root=args.data_root,
            cache_root=args.cache_dir,
            output_dir=args.output,
            device=args.device,
            batch_size=args.batch_size,
            overwrite=args.overwrite,
            cache_dtype=args.cache_dtype,
            bootstrap_rounds=args.bootstrap,
            probe_seeds=args.probe_seeds,
            harness=harness_options(args),
            text_tokenizer=args.text_tokenizer,
            asr_decoder=args.asr_decoder,
            verify_data=args.verify_data,
        )
    tasks = _tasks(args)
    data_errors = (ShardError, DataVerificationError, IsADirectoryError)
    with user_errors(EncoderError, FileNotFoundError, FileExistsError, NotImplementedError, *data_errors):
        frame = evaluate(args.encoder, tasks, opts)
    print(summary_table(frame))
    if not frame.empty:
        from xbench.report.plots import write_plots

        write_plots(frame, Path(args.output) / frame.encoder.iloc[0] / args.protocol / "plots")
    print(f"results: {args.output}")
    return 0
