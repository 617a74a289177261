"""``xbench run``: embed an encoder's audio once into the cache, then score the tracks (:mod:`xbench.pipeline.run`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from xbench.cli.common import (
    CliError,
    add_encoder,
    add_encoder_options,
    add_harness,
    add_tasks_dir,
    encoder_spec,
    harness_options,
    tracks_arg,
    user_errors,
)
from xbench.core.enums import CacheDtype, Overwrite, Precision, Protocol, Stage, Track, choices
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
    add_encoder_options(run, name=True)
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--tasks", nargs="+", metavar="TASK", help="task names")
    which.add_argument(
        "--suite", help=f"a built suite ({', '.join(SUITES)}; see `xbench suite`), or 'all' registered tasks"
    )
    add_tasks_dir(run)
    run.add_argument(
        "--skip-missing",
        action="store_true",
        help="skip (warning each) the tasks whose data is missing; --suite all otherwise lists them all and stops",
    )
    run.add_argument(
        "--lite",
        type=int,
        default=None,
        metavar="N",
        help="quick iteration: a seeded, class-stratified subset of at most N clips per split; results go to "
        "OUTPUT/lite-N, marked lite (the leaderboard never mixes them with full runs)",
    )
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
        help="first recheck every data file against the checksums `xbench download` recorded (or, for a task "
        "without a Zenodo record, its declaration's checksums); refuse on a mismatch",
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
    scale = run.add_argument_group("scale (see README: Scale)")
    scale.add_argument(
        "--stage",
        choices=choices(Stage),
        default=Stage.ALL.value,
        help="embed: only embed into the cache (needs the encoder); score: only score from the cache; all (default)",
    )
    scale.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes decoding audio for each embedding process (0: in it; default: from the CPU count)",
    )
    scale.add_argument(
        "--max-padding",
        type=float,
        default=None,
        metavar="SHARE",
        help="xbench protocol: batch clips of similar length with at most this share of zero padding (frames "
        "from padding trimmed); default 0 on the CPU (equal lengths only), 0.2 on a GPU",
    )
    scale.add_argument(
        "--precision",
        choices=choices(Precision),
        default=Precision.FP32.value,
        help="encoder forward pass: fp32, or bf16/fp16 under autocast (embeddings stored as float32 or --cache-dtype)",
    )
    scale.add_argument("--tf32", action="store_true", help="CUDA: allow TF32 matrix products (off by default)")
    scale.add_argument(
        "--launcher",
        choices=("slurm", "local"),
        default=None,
        help="submit through submitit (pip install 'xbench[slurm]'): --jobs embed jobs, then one score job after them; "
        "local runs them as local processes",
    )
    scale.add_argument("--jobs", type=int, default=1, metavar="N", help="--launcher: embed jobs (default 1)")
    scale.add_argument("--partition", default=None, help="--launcher slurm: the SLURM partition")
    scale.add_argument(
        "--gpus-per-job", type=int, default=0, metavar="G", help="--launcher: GPUs per job, one process each"
    )
    scale.add_argument("--cpus-per-job", type=int, default=None, metavar="C", help="--launcher: CPUs per job")
    scale.add_argument(
        "--time", type=int, default=24 * 60, metavar="MIN", help="--launcher: job time limit (then requeued)"
    )
    scale.add_argument(
        "--slurm-folder", default=None, metavar="DIR", help="--launcher: submitit logs (default OUTPUT/slurm)"
    )
    scale.add_argument("--wait", action="store_true", help="--launcher slurm: wait for the score job and print")
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
            tasks = [get_task(name, args.tasks_dir) for name in args.tasks]
        elif args.suite in SUITES:
            tasks = suite_tasks(args.suite, args.tasks_dir, args.data_root)
        elif args.suite == "all":
            tasks = [t for t in load_tasks(args.tasks_dir).values() if not t.disabled]
        else:
            raise CliError(f"unknown suite {args.suite!r}; choose from {', '.join(SUITES)} or 'all'")
    return _with_data(tasks, args) if args.suite == "all" or args.skip_missing else tasks


def _with_data(tasks: list[Any], args: argparse.Namespace) -> list[Any]:
    """The tasks whose shards are all present. The others are named all at once (private ones included): one
    error, or with ``--skip-missing`` one warning each, and the run goes on without them."""
    import logging

    from xbench.core.paths import task_audio_dir
    from xbench.taskspec.listing import data_status

    missing = {t.name: status for t in tasks if (status := data_status(t, args.data_root)) != "yes"}
    if not missing:
        return tasks
    named = [
        f"{t.name} ({missing[t.name]}{', private' if t.private else ''}: {task_audio_dir(t, args.data_root)})"
        for t in tasks
        if t.name in missing
    ]
    present = [t for t in tasks if t.name not in missing]
    if not args.skip_missing or not present:
        remedy = "pass --skip-missing to run the others" if present else "no task has its data"
        raise CliError(
            f"data missing for {len(missing)} of {len(tasks)} task(s): {'; '.join(named)}. Fetch public tasks with "
            f"`xbench download NAME...` and place private ones in their folder; or {remedy}"
        )
    for line in named:
        logging.getLogger(__name__).warning("skipping task %s: its data is missing", line)
    return present


def _submit(args: argparse.Namespace, encoder: Any, tasks: list[Any], opts: Any) -> Any:
    """``--launcher``: submit the run as jobs; the score job's frame (local, or slurm with ``--wait``), else None."""
    from xbench.pipeline.launch import ClusterOptions, submit

    if opts.stage != "all":
        raise CliError("--launcher submits both stages (embed jobs, then a score job): leave --stage at all")
    with user_errors(ValueError, ImportError):
        cluster = ClusterOptions(
            launcher=args.launcher,
            jobs=args.jobs,
            folder=args.slurm_folder or str(Path(args.output) / "slurm"),
            partition=args.partition,
            gpus_per_job=args.gpus_per_job,
            cpus_per_job=args.cpus_per_job,
            timeout_min=args.time,
        )
        submission = submit(encoder, tasks, opts, cluster)
    print(submission.describe())
    return submission.wait() if args.launcher == "local" or args.wait else None


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from xbench.data.download import DataVerificationError
    from xbench.data.shards import ShardError
    from xbench.encoder.contract import EncoderError
    from xbench.pipeline.launch import Ranks
    from xbench.pipeline.lite import lite_output
    from xbench.pipeline.run import RunOptions, evaluate, summary_table

    with user_errors(ValueError):
        harness = replace(harness_options(args), precision=args.precision, tf32=args.tf32)
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
            harness=harness,
            text_tokenizer=args.text_tokenizer,
            asr_decoder=args.asr_decoder,
            verify_data=args.verify_data,
            stage=args.stage,
            workers=args.workers,
            max_padding=args.max_padding,
            lite=args.lite,
        )
        ranks = Ranks.from_env()
    tasks = _tasks(args)
    data_errors = (ShardError, DataVerificationError, IsADirectoryError)
    with user_errors(EncoderError, FileNotFoundError, FileExistsError, NotImplementedError, *data_errors):
        encoder = encoder_spec(args)
        frame = _submit(args, encoder, tasks, opts) if args.launcher else evaluate(encoder, tasks, opts)
    if frame is None:
        return 0  # submitted to SLURM
    if not ranks.leader:
        return 0  # rank 0 of the torchrun prints and plots
    if opts.stage == "embed":
        print(f"embedded: {len(tasks)} task(s) in {opts.cache_root or '$XBENCH_CACHE'}; score with --stage score")
        return 0
    print(summary_table(frame))
    output = Path(args.output) if opts.lite is None else lite_output(args.output, opts.lite)
    if not frame.empty:
        from xbench.report.plots import write_plots

        write_plots(frame, output / frame.encoder.iloc[0] / args.protocol / "plots")
    print(f"results: {output}" + (f" (lite: at most {opts.lite} clips per split)" if opts.lite else ""))
    return 0
