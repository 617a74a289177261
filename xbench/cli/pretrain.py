"""``xbench pretrain``: pretrain a zoo encoder (Dasheng, BEATs/OpenBEATs, CaptionStew) on X-ARES shards.

Thin over :func:`xbench.encoders.pretraining.run.pretrain`; run it under ``torchrun`` for DDP.
"""

from __future__ import annotations

import argparse
from typing import Any

from xbench.cli.common import CliError, user_errors

EPILOG = """\
data: each --data value is a shard file, a folder of *.tar, or a pattern with * and {a,b} / {000..009};
NAME=PATTERN puts shards in source NAME and NAME:WEIGHT=PATTERN also sets its mixing weight, e.g.
  --data speech:2=/data/speech/train-*.tar music=/data/music/train-*.tar
output: OUT/encoder.py (the trained encoder: xbench check / xbench run --encoder OUT/encoder.py),
OUT/encoder_init.py (the same architecture untrained), checkpoints/, init/, final/, log.csv, loss.png
(one sub-folder per stage for multi-stage recipes). DDP: torchrun --nproc-per-node N -m xbench pretrain ...
"""


def register(subparsers: Any) -> None:
    """Add ``pretrain``."""
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain an encoder of the zoo on your shards",
        description="Pretrain a Dasheng, BEATs/OpenBEATs or CaptionStew encoder with one of the built-in recipes "
        "(or a recipe file), streaming audio from X-ARES-format shards; checkpoints are resumable.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "recipe",
        metavar="RECIPE",
        help="a built-in recipe (dasheng-tiny, dasheng-base, beats-tiny, openbeats-base, captionstew-tiny, "
        "captionstew-m) or a recipe .json file",
    )
    p.add_argument("--data", nargs="+", required=True, metavar="SHARDS", help="shards to stream (see below)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimiser steps of each encoder stage (default: the recipe's; BEATs tokenizers keep tokenizer.steps)",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CHECKPOINT",
        help="continue the run in --out from its latest checkpoint, or from CHECKPOINT (a state.pt or its folder)",
    )
    p.add_argument("--config", metavar="FILE", default=None, help="JSON/YAML merged over the recipe's sections")
    p.add_argument("--iterations", type=int, default=None, help="BEATs: tokenizer/encoder iterations")
    p.add_argument("--batch-size", type=int, default=None, help="clips per process per micro-batch")
    p.add_argument("--accumulation", type=int, default=None, help="micro-batches per optimiser step")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default=None,
        help="bf16: forward pass under bfloat16 autocast; auto: on a GPU that supports it",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the initialisation, data order and masks")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="N", help="checkpoint every N steps")
    p.add_argument("--device", default=None, help="default: this process's GPU under torchrun, else cpu")
    p.set_defaults(func=_pretrain)


def _pretrain(args: argparse.Namespace) -> int:
    from xbench.data.decode import AudioDecodeError
    from xbench.data.shards import ShardError
    from xbench.encoders.pretraining.checkpoint import CheckpointError
    from xbench.encoders.pretraining.distributed import environment_world
    from xbench.encoders.pretraining.recipe import RecipeError
    from xbench.encoders.pretraining.run import PretrainOptions, RunError, pretrain
    from xbench.encoders.pretraining.stream import DataSpecError

    for name in ("steps", "iterations", "batch_size", "accumulation", "checkpoint_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CliError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    options = PretrainOptions(
        recipe=args.recipe,
        data=args.data,
        out=args.out,
        resume=args.resume,
        config=args.config,
        steps=args.steps,
        iterations=args.iterations,
        batch_size=args.batch_size,
        accumulation=args.accumulation,
        precision=args.precision,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
    )
    with user_errors(RecipeError, DataSpecError, CheckpointError, RunError, ShardError, AudioDecodeError):
        out = pretrain(options)
    if environment_world()[0] == 0:  # under torchrun, one line from rank 0
        print(out / "encoder.py")
    return 0
