"""``xbench pretrain``: run a recipe's stages on streamed shards, with checkpoints, resume, logs and DDP.

:func:`pretrain` resolves the recipe, the data sources and the process group, then runs each stage
(:class:`~xbench.encoders.pretraining.recipe.Stage`) with the zoo's one loop
(:class:`~xbench.encoders.training.Trainer`): checkpoint every ``checkpoint_every`` steps and at the end,
log every step, write ``init/`` before the first step and ``final/`` after the last. A one-stage recipe
uses the output folder itself; a multi-stage one (BEATs iterations) one sub-folder per stage. At the end
``encoder.py`` (the final weights) and ``encoder_init.py`` (the same architecture before training) are
written beside them: X-ARES encoder files for ``xbench check`` and ``xbench run``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xbench.encoders.pretraining import checkpoint as ckpt
from xbench.encoders.pretraining import distributed
from xbench.encoders.pretraining.progress import PLOT_EVERY_SECONDS, record_row, write_log
from xbench.encoders.pretraining.recipe import BuildContext, EncoderFile, Recipe, Stage, load_recipe
from xbench.encoders.pretraining.stream import AudioStream, Source, parse_sources
from xbench.encoders.training import StepRecord, Trainer, mix_seed
from xbench.encoders.weights import seeded

ENCODER_FILE = "encoder.py"
INIT_ENCODER_FILE = "encoder_init.py"


class RunError(ValueError):
    """The output folder cannot be used as asked (e.g. it holds a run and ``--resume`` was not given)."""


@dataclass
class PretrainOptions:
    """What ``xbench pretrain`` was asked: recipe, data, output folder, resume, and overrides of the recipe.

    ``resume``: False starts afresh (the folder must not hold a run), True continues from each stage's
    latest checkpoint, a path continues the first unfinished stage from that checkpoint.
    """

    recipe: str
    data: list[str]
    out: Path
    resume: bool | str = False
    config: str | None = None
    steps: int | None = None
    iterations: int | None = None
    batch_size: int | None = None
    accumulation: int | None = None
    precision: str | None = None
    seed: int | None = None
    checkpoint_every: int | None = None
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def overrides(self) -> dict[str, Any]:
        """The command-line overrides as a nested recipe fragment."""
        out: dict[str, Any] = dict(self.extra)
        top = {"steps": self.steps, "iterations": self.iterations, "checkpoint_every": self.checkpoint_every}
        out.update({k: v for k, v in top.items() if v is not None})
        train = {"accumulation": self.accumulation, "precision": self.precision, "seed": self.seed}
        if any(v is not None for v in train.values()):
            out["train"] = {k: v for k, v in train.items() if v is not None}
        if self.batch_size is not None:
            out["data"] = {"batch_size": self.batch_size}
        return out


def _stage_dirs(out: Path, stages: list[Stage]) -> list[Path]:
    return [out] if len(stages) == 1 else [out / stage.name for stage in stages]


def _sources_fingerprint(sources: list[Source]) -> list[list[Any]]:
    return [[s.name, [Path(p).name for p in s.shards], s.weight] for s in sources]


def encoder_source(spec: EncoderFile, folder: str, recipe: str, what: str) -> str:
    """An X-ARES encoder file: a no-argument subclass of the zoo wrapper loading ``<here>/<folder>/<relpath>``."""
    name = f"Pretrained{spec.cls}" if folder.endswith("final") else f"Untrained{spec.cls}"
    return f'''"""{what} of the `{recipe}` recipe, written by `xbench pretrain`.

Check it with `xbench check --encoder <this file>`, benchmark it with `xbench run --encoder <this file>`.
"""

from pathlib import Path

from {spec.module} import {spec.cls}

CHECKPOINT = Path(__file__).resolve().parent / "{folder}" / "{spec.relpath}"


class {name}({spec.cls}):
    """{spec.cls} with the weights in {folder}/{spec.relpath}."""

    def __init__(self) -> None:
        super().__init__(checkpoint=CHECKPOINT)
'''


class _StageRun:
    """One stage: build, restore or initialise, train with checkpoints, write ``final/``."""

    def __init__(
        self,
        recipe: Recipe,
        stage: Stage,
        index: int,
        out: Path,
        stage_dir: Path,
        sources: list[Source],
        device: torch.device,
        say: Callable[[str], None],
    ) -> None:
        self.recipe, self.stage, self.stage_dir, self.say = recipe, stage, stage_dir, say
        self.rank, self.world = distributed.init(device)
        settings = stage.settings
        with seeded(settings.seed):
            self.model = stage.build(BuildContext(out, stage_dir, sources, self.rank))
        self.model.to(device)
        distributed.convert_batchnorm(self.model, device)
        module = distributed.wrap(self.model, device)
        self.trainer = Trainer(self.model, stage.loss, settings, stage.steps, module=module)
        data = recipe.data
        self.stream = AudioStream(
            sources, mix_seed(settings.seed, index), data.crop_seconds, data.sample_rate, data.shuffle_buffer
        )
        self.batch_size = data.batch_size
        self.rows: list[dict[str, Any]] = []
        self.fingerprint = {**recipe.fingerprint(), "sources": _sources_fingerprint(sources)}
        self.every = int(recipe.config["checkpoint_every"])
        self.keep = int(recipe.config.get("keep_checkpoints", 2))
        self.log_every = int(recipe.config.get("log_every", 10))
        self.title = f"{recipe.name}: {stage.name}"
        self.plotted = time.monotonic()

    def restore(self, state_file: Path) -> None:
        state = ckpt.load_state(state_file, self.fingerprint, self.stage.name, self.world)
        try:
            self.trainer.load_state_dict({**state["trainer"], "rng": state["rngs"][self.rank]})
            self.stream.load_state_dict(state["stream"])
        except (RuntimeError, ValueError, KeyError, IndexError) as exc:
            raise ckpt.CheckpointError(
                f"checkpoint {state_file} does not fit this model: {' '.join(str(exc).split())[:200]}"
            ) from exc
        self.rows = list(state["log"])
        self.say(f"[{self.stage.name}] resumed from {state_file} at step {self.trainer.step}")

    def _checkpoint(self, step: int) -> None:
        with torch.random.fork_rng(devices=[]):  # writing a checkpoint must not move any RNG
            state = self.trainer.state_dict()
            rngs = distributed.gather_objects(state.pop("rng"))
            if self.rank == 0:
                payload = {
                    "stage": self.stage.name,
                    "fingerprint": self.fingerprint,
                    "world_size": self.world,
                    "trainer": state,
                    "rngs": rngs,
                    "stream": self.stream.state_dict(),
                    "log": self.rows,
                }
                ckpt.save_checkpoint(self.stage_dir, step, payload, lambda f: self.stage.save(self.model, f), self.keep)
                plot = time.monotonic() - self.plotted > PLOT_EVERY_SECONDS
                write_log(self.stage_dir, self.rows, self.title, plot)
                self.plotted = time.monotonic() if plot else self.plotted
        distributed.barrier()

    def _on_step(self, record: StepRecord) -> None:
        self.rows.append(record_row(record))
        steps = self.stage.steps
        if record.step % self.log_every == 0 or record.step in (1, steps):
            extra = "".join(f" {k} {v:.4g}" for k, v in record.metrics.items())
            self.say(
                f"[{self.stage.name}] step {record.step}/{steps} loss {record.loss:.4f} lr {record.lr:.3g}"
                f"{extra} ({record.seconds:.2f} s/step)"
            )
        if record.step % self.every == 0 or record.step == steps:
            self._checkpoint(record.step)

    def train(self) -> None:
        if self.trainer.step == 0 and self.rank == 0:
            ckpt.write_folder(self.stage_dir / "init", lambda f: self.stage.save(self.model, f))
        batches = self.stream.batches(self.batch_size, self.rank, self.world)
        remaining = self.stage.steps - self.trainer.step
        self.trainer.run(batches, remaining, self._on_step)
        if self.rank == 0:

            def fill(folder: Path) -> None:
                self.stage.save(self.model, folder)
                ckpt.mark_done(folder)

            ckpt.write_folder(self.stage_dir / "final", fill)
            write_log(self.stage_dir, self.rows, self.title)
        distributed.barrier()


def _holds_run(stage_dir: Path) -> bool:
    return (stage_dir / ckpt.LATEST).exists() or (stage_dir / "final").exists()


def pretrain(options: PretrainOptions, say: Callable[[str], None] | None = None) -> Path:
    """Run ``options``; returns the output folder (``encoder.py`` inside).

    Raises ``RecipeError``, ``DataSpecError``, ``CheckpointError`` or :class:`RunError` for user errors.
    """
    rank, local_rank, _ = distributed.environment_world()
    speak = say or (lambda text: print(text, file=sys.stderr, flush=True))
    quiet_say: Callable[[str], None] = speak if rank == 0 else (lambda _text: None)
    recipe = load_recipe(options.recipe, options.config, options.overrides())
    sources = parse_sources(options.data, dict(recipe.data.weights or {}))
    stages = recipe.stages()
    out = Path(options.out).expanduser()
    dirs = _stage_dirs(out, stages)
    if not options.resume and any(_holds_run(d) for d in dirs):
        raise RunError(f"{out} already holds a pretraining run; pass --resume to continue it, or another --out")
    device = distributed.pick_device(options.device, local_rank)
    explicit = None if options.resume in (True, False) else ckpt.resolve_resume(str(options.resume))
    quiet_say(
        f"{recipe.name}: {len(stages)} stage(s) {', '.join(s.name for s in stages)}; sources "
        + ", ".join(f"{s.name} ({len(s.shards)} shards, weight {s.weight:g})" for s in sources)
    )
    try:
        for index, (stage, stage_dir) in enumerate(zip(stages, dirs, strict=True)):
            if ckpt.is_done(stage_dir / "final"):
                quiet_say(f"[{stage.name}] already finished ({stage_dir / 'final'})")
                continue
            run = _StageRun(recipe, stage, index, out, stage_dir, sources, device, quiet_say)
            state_file = explicit or (ckpt.latest_checkpoint(stage_dir) if options.resume else None)
            explicit = None
            if state_file is not None:
                run.restore(state_file)
            run.train()
        final = [(s, d) for s, d in zip(stages, dirs, strict=True) if s.encoder is not None][-1]
        if rank == 0:
            _write_encoder_files(out, final[0], final[1], recipe.name)
    finally:
        distributed.shutdown()
    return out


def _write_encoder_files(out: Path, stage: Stage, stage_dir: Path, recipe: str) -> None:
    from xbench.core.atomic_io import atomic_write_bytes

    assert stage.encoder is not None
    base = stage_dir.relative_to(out).as_posix()
    prefix = "" if base == "." else f"{base}/"
    files = ((ENCODER_FILE, "final", "The pretrained encoder"), (INIT_ENCODER_FILE, "init", "The untrained encoder"))
    for name, folder, what in files:
        source = encoder_source(stage.encoder, f"{prefix}{folder}", recipe, what)
        atomic_write_bytes(out / name, source.encode())
