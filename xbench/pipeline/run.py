"""``xbench.pipeline.run``: embed once, then score every task on the MLP and kNN tracks from the cache.

Stage 1 loads the encoder only if some embed unit is missing; stage 2 (the scorer registered for the
task's type in :mod:`xbench.pipeline.scorers`: probes, kNN, bootstrap) reads the cache alone. One
JSON result per (encoder, task) and its predictions are committed together (one marker carrying both
files' sha256, written last); a run summary goes to JSON and CSV. Reruns with ``overwrite="missing"``
skip finished work (resume) and repair results a killed run left incomplete.

Several runs may share one cache and one output folder, on one host or on several: embed units are
claimed (:mod:`xbench.embed.claims`), so no unit is embedded twice, and each result is scored and
written under a claim of its own, so a run finding a result another run just committed reuses it.
``stage="embed"`` stops after stage 1 and ``stage="score"`` does stage 2 alone (every unit must be in the
cache). Under ``torchrun`` every rank embeds and rank 0 scores (:mod:`xbench.pipeline.launch`).
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from xbench._version import __version__
from xbench.core.atomic_io import atomic_write_bytes, atomic_write_json, clean_orphans, commit_group, group_committed
from xbench.core.claims import ClaimSettings, hold
from xbench.core.devices import check_device, describe_device, peak_memory
from xbench.core.enums import CacheDtype, Overwrite, Protocol, Stage, choice, choices, parse_tracks
from xbench.core.paths import cache_root as default_cache_root
from xbench.core.paths import task_audio_dir
from xbench.data.labels import check_labels
from xbench.embed.cache import EmbeddedUnit, concat_units, marker_path, read_unit
from xbench.embed.claims import take_units
from xbench.embed.encode import EmbedSettings, EmbedUnit, embed_unit, plan_units, split_names
from xbench.embed.loader import default_workers
from xbench.encoder.contract import HarnessOptions
from xbench.encoder.identity import encoder_fingerprint, encoder_slug
from xbench.encoder.spec import result_slug
from xbench.pipeline.handle import EncoderHandle, open_encoder
from xbench.pipeline.launch import Ranks, process_group, rank_device
from xbench.pipeline.scorers import (
    VALID_SHARE,
    ScoreInput,
    get_scorer,
    holds_out_validation,
    scorer_settings,
    split_roles,
)
from xbench.scoring.record import ResultRecord, TrackScore
from xbench.scoring.scores import aggregate
from xbench.scoring.table import scored_tasks, table
from xbench.taskspec.config import TaskConfig

OVERWRITE = choices(Overwrite)
GPU_MAX_PADDING = 0.2  # length buckets' padding share when --max-padding is not given and the encoder is off the CPU
log = logging.getLogger(__name__)


class MissingEmbeddingsError(FileNotFoundError):
    """``stage="score"`` found embed units not in the cache."""


@dataclass
class RunOptions:
    """Settings of one run (see ``xbench run --help``); the closed choices are checked when it is built."""

    tracks: tuple[str, ...] = ("mlp", "knn")
    protocol: str = "xbench"
    data_root: str | None = None
    cache_root: str | None = None
    output_dir: str | None = None
    device: str = "cpu"
    batch_size: int | None = None  # overrides each task's batch_size_encode
    overwrite: str = "missing"
    cache_dtype: str = "float16"
    bootstrap_rounds: int = 1000
    # MLP probe seeds (default protocol): a count from each task's seed (None: 5), or the seeds themselves
    probe_seeds: int | tuple[int, ...] | None = None
    harness: HarnessOptions = field(default_factory=HarnessOptions)
    show_progress: bool = True
    # contrastive (Clotho): bert-base-uncased vocab.txt, tokenizer folder or hub id; None: see resolve_tokenizer
    text_tokenizer: str | None = None
    # asr (LibriSpeech): causal-LM folder or hub id; None: $XBENCH_ASR_DECODER, else Qwen/Qwen2.5-0.5B
    asr_decoder: str | None = None
    asr_max_new_tokens: int = 200
    asr_valid_utterances: int | None = 200  # greedy model selection on this many validation utterances
    verify_data: bool = False  # recheck every data file against its download marker's checksums first
    claims: ClaimSettings = field(default_factory=ClaimSettings)  # embed-unit and result claims (shared caches)
    stage: str = "all"  # embed (needs the encoder), score (from the cache alone) or all
    workers: int | None = None  # decoding processes per embedding process; None: from the CPU count
    # xbench protocol: padding share of a length bucket; None: 0 (equal lengths only) on the CPU, else GPU_MAX_PADDING
    max_padding: float | None = None
    identity_cache: bool = True  # know a named encoder's identity from the files its building read, unbuilt
    lite: int | None = None  # at most this many clips per split, class-stratified (xbench.pipeline.lite)

    def __post_init__(self) -> None:
        # one spelling per choice (xbench.core.enums); ValueError names the option and its choices
        self.tracks = parse_tracks(self.tracks)
        self.protocol = choice(Protocol, self.protocol, "protocol")
        self.overwrite = choice(Overwrite, self.overwrite, "overwrite")
        self.cache_dtype = choice(CacheDtype, self.cache_dtype, "cache_dtype")
        self.harness = self.harness.for_protocol(self.protocol)  # xares: whole clips, no harness chunking
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch size must be a positive integer, got {self.batch_size!r}")
        self.probe_seeds = _probe_seeds_option(self.probe_seeds, self.protocol)
        for device in dict.fromkeys((self.device, self.harness.device)):
            check_device(device)
        self.stage = choice(Stage, self.stage, "stage")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)):
            raise ValueError(f"workers must be a whole number, got {self.workers!r}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be 0 (decode in the embedding process) or more, got {self.workers}")
        if self.max_padding is None:
            self.max_padding = 0.0 if self.harness.device == "cpu" else GPU_MAX_PADDING
        if not 0.0 <= self.max_padding < 1.0:
            raise ValueError(f"max padding is a share of a batch's samples in [0, 1), got {self.max_padding!r}")
        if self.lite is not None and (isinstance(self.lite, bool) or not isinstance(self.lite, int) or self.lite < 1):
            raise ValueError(f"lite must be a positive number of clips per split, got {self.lite!r}")


def _probe_seeds_option(value: Any, protocol: str) -> int | tuple[int, ...] | None:
    """``probe_seeds`` checked: None, a count of at least 1, or distinct seeds; only None or 1 for xares."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, tuple, list)):
        raise ValueError(f"probe seeds must be a count or a list of seeds, got {value!r}")
    if isinstance(value, int) and value < 1:
        raise ValueError(f"probe seeds must be at least 1, got {value}")
    if not isinstance(value, int):
        value = tuple(int(s) for s in value)
        if not value or len(set(value)) != len(value) or min(value) < 0:
            raise ValueError(f"probe seeds must be distinct non-negative integers, got {list(value)}")
    if protocol == "xares" and value != 1:
        raise ValueError("probe seeds apply to protocol xbench; the xares protocol trains one probe as X-ARES does")
    return value


def _bar(total: int | None, desc: str, show: bool, unit: str = "clip") -> Any:
    """A progress bar with a total and an ETA on a terminal; quiet when not on one (logs get a line per task)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None if show else True, leave=False, dynamic_ncols=True)


class TaskRunner:
    """Scores one task for one encoder; see :func:`evaluate`."""

    def __init__(self, task: TaskConfig, encoder: EncoderHandle, opts: RunOptions) -> None:
        self.task, self.encoder, self.opts = task, encoder, opts
        self.identity, self.slug = encoder.identity, encoder.slug
        self.hop = float(self.identity["hop_size_in_ms"])
        root = default_cache_root(opts.cache_root)
        folder = encoder_slug(self.identity, encoder_fingerprint(self.identity))  # by identity: --name changes no key
        self.unit_root = root / "embeddings" / folder / f"{task.name}-v{task.version}-{task.fingerprint()[:12]}"
        self.unit_root = self.unit_root / opts.protocol
        self.predictions: tuple[Any, ...] | None = None  # for `xbench compare`
        self.samples: dict[Path, int] = {}  # samples per unit, counted by the label check

    def units(self) -> list[EmbedUnit]:
        """The task's embed units, once every split's labels pass (read from the shards' json members alone,
        before any audio is encoded: :class:`xbench.data.labels.ClipLabelError` names task, split, shard, key).

        A unit already committed under this task's fingerprint is not read again: its labels passed this check
        before it was embedded (so a score-only rerun reads no shard)."""
        audio_dir = task_audio_dir(self.task, self.opts.data_root)
        opts = self.opts
        units = plan_units(
            self.task, audio_dir, self.unit_root, self.identity, opts.protocol, opts.cache_dtype, opts.max_padding
        )
        for unit in units:
            if opts.overwrite != "always" and unit.done():
                continue
            self.samples[unit.path] = check_labels(self.task, unit.split, unit.shards)
        return units

    def embed(self, units: list[EmbedUnit]) -> float:
        """Stage 1: embed the units not yet committed that this process claims (see :mod:`xbench.embed.claims`);
        returns once every unit is committed, by this process or another. The encoder is built only if needed."""
        always = self.opts.overwrite == "always"
        todo = [u for u in units if always or not u.done()]
        start = time.perf_counter()
        if not todo:
            return 0.0
        opts = self.opts
        workers = default_workers(Ranks.from_env().local_world_size) if opts.workers is None else opts.workers
        settings = EmbedSettings(
            batch_size=opts.batch_size or self.task.batch_size_encode,
            protocol=opts.protocol,
            cache_dtype=opts.cache_dtype,
            crop_length=self.task.crop_length,
            workers=workers,
            max_padding=opts.max_padding,
        )
        done = (lambda unit: False) if always else EmbedUnit.done
        # the bar's total: the samples the label check counted (crops are counted only once decoded)
        total = sum(self.samples.get(u.path, 0) for u in todo) if self.task.crop_length is None else None
        embedded, seconds = [], 0.0
        with _bar(total, f"embed {self.task.name}", opts.show_progress) as bar:  # closed (line cleared) on errors too
            for unit in take_units(todo, done, opts.claims):
                enc = self.encoder.get()
                stats = embed_unit(enc, unit, settings, bar)
                embedded.append(stats.clips)
                seconds += stats.real_samples / enc.sampling_rate
                bar.set_postfix_str(f"{seconds:.0f} s of audio", refresh=False)
        elapsed = time.perf_counter() - start
        log.info(
            "task %s: embedded %d of %d unit(s) here (%d clips, %.0f s of audio) in %.1f s",
            self.task.name, len(embedded), len(todo), sum(embedded), seconds, elapsed,
        )  # fmt: skip
        return elapsed

    def load(self, units: list[EmbedUnit]) -> dict[str, EmbeddedUnit]:
        by_split: dict[str, list[EmbeddedUnit]] = {}
        for unit in units:
            by_split.setdefault(unit.split, []).append(read_unit(unit.path))
        return {s: concat_units(us) for s, us in by_split.items()}

    def check_supported(self) -> None:
        """``NotImplementedError`` unless a scorer is registered for the task's type."""
        get_scorer(self.task)

    def run(self) -> ResultRecord:
        """Both stages for this task alone."""
        self.check_supported()
        units = self.units()
        return self.score(units, self.embed(units))

    def score(self, units: list[EmbedUnit], embed_s: float = 0.0) -> ResultRecord:
        """Stage 2: score the task from its committed cache units alone (no encoder needed)."""
        t0 = time.perf_counter()
        splits = self.load(units)
        t1 = time.perf_counter()
        scored = get_scorer(self.task).score(ScoreInput(self.task, splits, self.opts, self.hop))
        self.predictions = scored.predictions
        return self._record(units, splits, scored.tracks, embed_s, t1 - t0, time.perf_counter() - t1)

    def compute(self) -> dict[str, Any]:
        """Where and how this process computed: the encoder's device (GPU name, CUDA and cuDNN versions), its
        precision and TF32 setting, the probes' device, torch's intra-op thread count (probe and encoder numbers
        agree bitwise only at one thread count), and the peak host and device memory so far."""
        harness = self.opts.harness
        return {
            "encoder_device": describe_device(harness.device),
            "precision": harness.precision,
            "tf32": harness.tf32,
            "probe_device": self.opts.device,
            "threads": torch.get_num_threads(),
            "peak_memory": peak_memory(harness.device),
        }

    def _record(
        self,
        units: list[EmbedUnit],
        splits: dict[str, EmbeddedUnit],
        tracks: dict[str, Any],
        embed_s: float,
        load_s: float,
        score_s: float,
    ) -> ResultRecord:
        """The result record of this (encoder, task); ``tracks``: {track: result JSON's track entry}."""
        task, opts = self.task, self.opts
        test_count = sum(len(splits[s]) for s in {r[3] for r in split_roles(task)})
        return ResultRecord(
            task=task.name,
            encoder_slug=self.slug,
            weight=task.eval_weight,
            tracks={name: TrackScore.from_dict(entry) for name, entry in tracks.items()},
            formal_name=task.formal_name or task.name,
            domain=task.domain,
            private=task.private,
            protocol=opts.protocol,
            task_version=task.version,
            task_fingerprint=task.fingerprint(),
            test_count=test_count,
            seed=task.seed,
            encoder=self.identity,
            provenance={
                "xbench_version": __version__,
                "cache": str(self.unit_root),
                "cache_keys": sorted({u.key_hash for u in units}),
                "timings": {"embed_s": embed_s, "load_s": load_s, "score_s": score_s},
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "host": platform.node(),
                "torch": torch.__version__,
                "compute": self.compute(),
                "embed": embed_summary(units),
            },
        )


def run_settings(task: TaskConfig, slug: str, opts: RunOptions) -> dict[str, Any]:
    """Everything that produced a result besides the data: a saved result is reused only if these match."""
    return {
        "encoder": slug,
        "task_fingerprint": task.fingerprint(),
        "task_version": task.version,
        "protocol": opts.protocol,
        "tracks": sorted(opts.tracks),
        "bootstrap_rounds": opts.bootstrap_rounds,
        "cache_dtype": opts.cache_dtype,
        # model selection: the task's valid split, or a held-out share of train where valid is test (default protocol)
        "validation": f"train share {VALID_SHARE}" if holds_out_validation(task, opts) else "valid split",
        **scorer_settings(task, opts),  # the run options the task type's scorer depends on
        "xbench_version": __version__,
    }


def result_path(output_dir: Path, slug: str, task: TaskConfig, protocol: str) -> Path:
    """Where the JSON result of (encoder, task) goes."""
    return output_dir / slug / protocol / f"{task.name}@v{task.version}.json"


def commit_path(result_json: Path) -> Path:
    """The commit marker of a result, ``<task>@v<version>.commit.json``: the sha256 of the result JSON and
    of its predictions, written after both (:func:`xbench.core.atomic_io.commit_group`)."""
    return result_json.with_name(result_json.stem + ".commit.json")


def result_committed(result_json: Path) -> bool:
    """Whether a result JSON and its predictions were committed together and are unchanged since."""
    return group_committed(commit_path(result_json))


def write_result(result_json: Path, record: ResultRecord, runner: TaskRunner) -> None:
    """Commit the result JSON and the runner's predictions (when it made any) together."""
    from xbench.report.compare import predictions_path, write_predictions

    finals = [result_json] + ([predictions_path(result_json)] if runner.predictions is not None else [])
    with commit_group(commit_path(result_json), finals) as temps:
        atomic_write_json(temps[0], record.to_dict())
        if runner.predictions is not None:
            write_predictions(temps[1], runner.task, runner.hop, *runner.predictions)


def saved_result(
    path: Path | None, task: TaskConfig, settings: dict[str, Any], opts: RunOptions, warn: bool = True
) -> ResultRecord | None:
    """The saved result of ``task`` to reuse, or ``None`` to compute it.

    Reused only when committed (see :func:`result_committed`) and made with ``settings``; one made with
    other settings raises ``FileExistsError`` under ``overwrite="never"``; an incomplete one is computed
    again (``warn``: say so).
    """
    if path is None or opts.overwrite == "always" or not path.is_file():
        return None
    old = ResultRecord.read(path)
    if old.run_settings != settings:
        if opts.overwrite == "never":
            raise FileExistsError(
                f"task {task.name}: {path} was made with other settings and overwrite='never' keeps it"
            )
        return None
    if not result_committed(path):
        if warn:
            log.warning(
                "task %s: %s is incomplete (no matching %s: a run stopped while writing it); computing it again",
                task.name,
                path,
                commit_path(path).name,
            )
        return None
    # the declaration fields outside the fingerprint may have changed
    name = task.formal_name or task.name
    return replace(old, formal_name=name, domain=task.domain, private=task.private, weight=task.eval_weight)


def _as_task(task: TaskConfig | str) -> TaskConfig:
    if isinstance(task, TaskConfig):
        return task
    from xbench.taskspec.registry import get_task

    return get_task(task)


def evaluate(
    encoder: Any,
    tasks: Sequence[TaskConfig | str],
    options: RunOptions | None = None,
) -> Any:
    """Score ``encoder`` (a file, zoo name or nn.Module) on ``tasks`` (configs or registered names).

    Returns a pandas DataFrame. Also ``xbench.evaluate(encoder, tasks, options)``.
    One row per (task, track), sorted by task then track, with raw metric, 0–1 score, 95 % bootstrap
    interval and weight (the results table, :data:`xbench.scoring.record.TABLE_COLUMNS`).
    """
    opts = options or RunOptions()
    tasks = [_as_task(t) for t in tasks]
    if opts.lite is not None:  # each task on a seeded, class-stratified subset; results under <output>/lite-N
        from xbench.pipeline.lite import lite_run

        tasks, opts = lite_run(tasks, opts)
    if opts.overwrite not in OVERWRITE:
        raise ValueError(f"overwrite must be one of {OVERWRITE}, got {opts.overwrite!r}")
    ranks = Ranks.from_env()
    device = rank_device(opts.harness.device, ranks)
    if device != opts.harness.device:  # torchrun: each rank on its own GPU
        opts = replace(opts, harness=replace(opts.harness, device=device), device=rank_device(opts.device, ranks))
    with process_group(device, ranks) as group:
        return _evaluate(encoder, tasks, opts, group)


def _evaluate(encoder: Any, tasks: list[TaskConfig], opts: RunOptions, group: Any) -> Any:
    """:func:`evaluate` inside the run's process group: the stages, rank 0 alone scoring."""
    cache = default_cache_root(opts.cache_root) if opts.identity_cache else None
    handle = open_encoder(encoder, opts.harness, opts.protocol, cache)
    slug = handle.slug = result_slug(encoder, handle.identity)  # the name the user typed (or --name) + identity
    out_dir = Path(opts.output_dir) if opts.output_dir else None

    saved: dict[str, ResultRecord] = {}
    runners = []
    for task in tasks:
        path = result_path(out_dir, slug, task, opts.protocol) if out_dir else None
        old = saved_result(path, task, run_settings(task, slug, opts), opts)
        if old is not None:
            saved[task.name] = old
            continue
        runner = TaskRunner(task, handle, opts)
        runner.check_supported()
        runners.append(runner)
    if opts.verify_data and group.ranks.leader:
        verify_data([r.task for r in runners], opts.data_root)
    # stage 1: plan every task (checking all labels), embed every missing unit of every task, release the encoder
    planned = [(runner, runner.units()) for runner in runners]
    pending: list[tuple[TaskRunner, list[EmbedUnit], float]] = []
    for runner, units in planned:
        pending.append((runner, units, runner.embed(units) if opts.stage != "score" else 0.0))
    handle.release()
    group.barrier()  # every unit is committed (each rank waited for the others' claims); rank 0 scores
    if opts.stage == "embed" or not group.ranks.leader:
        return table([])
    # stage 2: score from the cache alone; with an output folder, under the result's claim
    if out_dir is not None:
        clean_orphans(out_dir / slug / opts.protocol)
    with _bar(len(pending), "score", opts.show_progress, unit="task") as scoring:
        for runner, units, embed_s in pending:
            scoring.set_postfix_str(runner.task.name, refresh=False)
            settings = run_settings(runner.task, slug, opts)
            path = result_path(out_dir, slug, runner.task, opts.protocol) if out_dir is not None else None
            claim = hold(path.with_name(path.stem + ".claim"), opts.claims, path.name) if path else nullcontext()
            with claim:
                result = saved_result(path, runner.task, settings, opts, warn=False)  # another run committed it?
                if result is None:
                    missing = [u for u in units if not u.done()]
                    if missing:
                        raise MissingEmbeddingsError(
                            f"task {runner.task.name}: {len(missing)} of {len(units)} embed units are not in the "
                            f"cache (first: {missing[0].path}); run the embed stage first (--stage embed or all)"
                        )
                    result = runner.score(units, embed_s)
                    log.info(
                        "task %s: %s (scored in %.1f s)", runner.task.name,
                        ", ".join(f"{name} {t.score:.3f}" for name, t in result.tracks.items()) or "no tracks",
                        result.provenance["timings"]["score_s"],
                    )  # fmt: skip
                    result.run_settings = settings
                    result.lite = opts.lite
                    if path is not None:
                        write_result(path, result, runner)
            saved[runner.task.name] = result
            scoring.update(1)

    records = [saved[task.name] for task in tasks]
    frame = table(records)
    if out_dir is not None:
        write_summary(out_dir / slug / opts.protocol, frame, records)
    return frame


def embed_summary(units: Sequence[EmbedUnit]) -> dict[str, Any]:
    """What embedding a task's units took, from their done-markers: encoder calls, clips per call, padding
    share, and the smallest batch size an out-of-memory error forced (``null``: none)."""
    calls = clips = padded = real = 0
    oom: list[int] = []
    for unit in units:
        try:
            stats = json.loads(marker_path(unit.path).read_text()).get("embed_stats") or {}
        except (OSError, ValueError):
            stats = {}
        calls += int(stats.get("forward_calls", 0))
        clips += int(stats.get("clips", 0))
        padded += int(stats.get("padded_samples", 0))
        real += int(stats.get("real_samples", 0))
        if stats.get("oom_batch_size") is not None:
            oom.append(int(stats["oom_batch_size"]))
    return {
        "forward_calls": calls,
        "clips_per_call": round(clips / calls, 3) if calls else None,
        "padding_share": round(1 - real / padded, 4) if padded else None,
        "oom_batch_size": min(oom) if oom else None,
    }


def verify_data(tasks: Sequence[TaskConfig], data_root: str | None) -> None:
    """Recheck every data file of ``tasks`` against the checksums its ``.complete`` download marker holds (a
    task without a Zenodo record: every file its declaration's ``checksums`` names);
    :class:`xbench.data.download.DataVerificationError` naming the task and files on any mismatch."""
    from xbench.data.download import DataVerificationError, download_tasks

    for result in download_tasks(tasks, root=data_root, verify=True):
        if result.status in ("private", "local"):
            log.warning("task %s: no Zenodo record and no declared checksums to verify its data against", result.task)
        elif not result.ok:
            where = result.corrupt[:1] or [f"missing {path}" for path in result.missing[:1]]
            first = f" (first: {where[0]})" if where else ""
            raise DataVerificationError(f"--verify-data: task {result.task}: {result.message}{first}")


def averages(frame: Any) -> list[dict[str, Any]]:
    """Weighted averages of an :func:`evaluate` frame (all / public / private / per domain, per track)."""
    return aggregate(scored_tasks(frame))


def write_summary(folder: Path, frame: Any, records: list[ResultRecord]) -> None:
    """``summary.json`` (results + averages) and ``summary.csv`` (one row per task and track), atomically."""
    results = [r.to_dict() for r in records]
    atomic_write_json(folder / "summary.json", {"results": results, "averages": averages(frame)})
    atomic_write_bytes(folder / "summary.csv", frame.to_csv(index=False).encode())


def summary_table(frame: Any) -> str:
    """The closing table: one row per task with MLP and kNN scores, then the weighted averages.

    A task whose MLP score is a mean over probe seeds also shows the MLP interval and the seeds' spread.
    """
    if frame.empty:
        return "(no results)"
    wide = frame.pivot_table(index="formal_name", columns="track", values="score", aggfunc="first")
    wide = wide.map(lambda v: f"{v:.3f}" if v == v else "-")
    seeded = frame[(frame.track == "mlp") & frame.probe_seeds.notna()].drop_duplicates("formal_name")
    if len(seeded):
        rows = seeded.set_index("formal_name")
        ci = {name: f"[{r.ci_low:.3f}, {r.ci_high:.3f}]" for name, r in rows.iterrows()}
        spread = {
            name: f"{r.seed_min:.3f}–{r.seed_max:.3f}" + (f", sd {r.seed_std:.3f}" if r.seed_std == r.seed_std else "")
            + f" ({r.probe_seeds})"
            for name, r in rows.iterrows()
        }
        wide["mlp 95% CI"] = [ci.get(name, "-") for name in wide.index]
        wide["mlp seeds: min–max, sd (n)"] = [spread.get(name, "-") for name in wide.index]
    lines = [wide.to_string()]
    for row in averages(frame):
        lines.append(
            f"Weighted average {row['track'].upper()} ({row['group']}, {row['tasks']} tasks): {row['score']:.3f}"
        )
    return "\n".join(lines)


__all__ = ["RunOptions", "evaluate", "averages", "summary_table", "split_names"]

