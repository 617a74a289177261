"""``xbench.pipeline.run``: embed once, then score every task on the MLP and kNN tracks from the cache.

Stage 1 loads the encoder only if some embed unit is missing; stage 2 (probes, kNN, bootstrap)
reads the cache alone. One JSON result per (encoder, task) is written atomically; a run summary
goes to JSON and CSV. Reruns with ``overwrite="missing"`` skip finished work (resume).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xbench._version import __version__
from xbench.core.atomic_io import atomic_write_bytes, atomic_write_json
from xbench.core.paths import cache_root as default_cache_root
from xbench.core.paths import task_audio_dir
from xbench.embed.cache import EmbeddedUnit, concat_units, read_unit
from xbench.embed.encode import EmbedUnit, embed_unit, plan_units, split_names
from xbench.encoder.contract import HarnessedEncoder, HarnessOptions, load_encoder, validate_attributes
from xbench.encoder.identity import encoder_fingerprint, encoder_identity, encoder_slug
from xbench.probes.knn import knn_scores
from xbench.probes.linear import ProbeConfig, ProbeData, predict, stack_targets, train_probe
from xbench.scoring.metrics import CLIP_METRICS, accuracy, segment_f1
from xbench.scoring.record import ResultRecord, TrackScore
from xbench.scoring.scores import aggregate, bootstrap_interval
from xbench.scoring.table import scored_tasks, table
from xbench.taskspec.config import TaskConfig

OVERWRITE = ("never", "missing", "always")
SUPPORTED_TYPES = ("clip", "frame", "contrastive", "asr")
SPECIAL_TYPES = ("contrastive", "asr")  # scored by their own probes (MLP track only)


@dataclass
class RunOptions:
    """Settings of one run (see ``xbench run --help``)."""

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
    harness: HarnessOptions = field(default_factory=HarnessOptions)
    show_progress: bool = True
    # contrastive (Clotho): bert-base-uncased vocab.txt, tokenizer folder or hub id; None: see resolve_tokenizer
    text_tokenizer: str | None = None
    # asr (LibriSpeech): causal-LM folder or hub id; None: $XBENCH_ASR_DECODER, else Qwen/Qwen2.5-0.5B
    asr_decoder: str | None = None
    asr_max_new_tokens: int = 200
    asr_valid_utterances: int | None = 200  # greedy model selection on this many validation utterances


class _LazyEncoder:
    """Builds the harnessed encoder on first use, so a fully cached run never loads the model."""

    def __init__(self, spec: Any, harness: HarnessOptions) -> None:
        self.spec, self.harness, self._enc = spec, harness, None

    def get(self) -> HarnessedEncoder:
        if self._enc is None:
            if self.spec is None:
                raise RuntimeError("the encoder was released after the embed stage")
            self._enc = HarnessedEncoder(load_encoder(self.spec), self.harness)
        return self._enc

    def release(self) -> None:
        """Drop the encoder (stage 2 trains from the cache alone)."""
        self.spec, self._enc = None, None


def _bar(total: int, desc: str, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="clip", disable=not show, leave=False)


def _clip_targets(task: TaskConfig, unit: EmbeddedUnit) -> Any:
    return stack_targets([task.encode_label(m) for m in unit.meta])


def _frame_data(task: TaskConfig, unit: EmbeddedUnit, hop: float) -> ProbeData:
    xs, ys = [], []
    for i, meta in enumerate(unit.meta):
        frames = torch.from_numpy(unit.clip_frames(i).astype(np.float32))
        xs.append(frames)
        ys.append(torch.from_numpy(task.frame_targets(meta, hop, len(frames)).T.astype(np.float32)))  # [T, C]
    return ProbeData(xs, ys)


def _metric(task: TaskConfig, hop: float) -> Any:
    """``fn(logits, data) -> raw metric`` for the task."""
    if task.task_type == "frame":
        args = dict(task.metric_args)
        seg = float(args.get("segment_length_in_s", 1.0))
        average = "micro" if task.metric.endswith("micro") else "macro"
        return lambda logits, data: segment_f1(logits, [t.numpy() for t in data.targets], hop, seg, average)
    fn = CLIP_METRICS.get(task.metric)
    if fn is None:
        raise NotImplementedError(f"task {task.name}: metric {task.metric!r} is not supported for clip probes")
    return lambda logits, data: fn(logits, data.targets.numpy())


def _subset(data: ProbeData, idx: np.ndarray) -> ProbeData:
    if data.frame_level:
        return ProbeData([data.inputs[i] for i in idx], [data.targets[i] for i in idx])
    t = torch.as_tensor(idx, dtype=torch.long)
    return ProbeData(data.inputs[t], data.targets[t])


def _split_roles(task: TaskConfig) -> list[tuple[str, str, str, str]]:
    """(fold label, train split(s), valid split, test split) per evaluation round."""
    if task.k_fold_splits is None:
        return [("", task.train_split, task.valid_split, task.test_split)]
    folds = [str(k) for k in task.k_fold_splits]
    return [(k, ",".join(f for f in folds if f != k), k, k) for k in folds]


class TaskRunner:
    """Scores one task for one encoder; see :func:`evaluate`."""

    def __init__(self, task: TaskConfig, encoder: _LazyEncoder, identity: dict, slug: str, opts: RunOptions) -> None:
        self.task, self.encoder, self.identity, self.slug, self.opts = task, encoder, identity, slug, opts
        self.hop = float(identity["hop_size_in_ms"])
        root = default_cache_root(opts.cache_root)
        self.unit_root = root / "embeddings" / slug / f"{task.name}-v{task.version}-{task.fingerprint()[:12]}"
        self.unit_root = self.unit_root / opts.protocol
        self._tokenizer: tuple[Any, str] | None = None  # contrastive tasks, loaded on first use
        self._decoder: tuple[Any, Any, str] | None = None  # asr tasks, loaded on first use
        self.predictions: tuple[dict[str, list[str]], dict[str, Any]] | None = None  # for `xbench compare`

    def units(self) -> list[EmbedUnit]:
        audio_dir = task_audio_dir(self.task, self.opts.data_root)
        return plan_units(
            self.task, audio_dir, self.unit_root, self.identity, self.opts.protocol, self.opts.cache_dtype
        )

    def embed(self, units: list[EmbedUnit]) -> float:
        todo = [u for u in units if self.opts.overwrite == "always" or not u.done()]
        start = time.perf_counter()
        if not todo:
            return 0.0
        enc = self.encoder.get()
        bs = self.opts.batch_size or self.task.batch_size_encode
        bar = _bar(0, f"embed {self.task.name}", self.opts.show_progress)
        for unit in todo:
            embed_unit(enc, unit, self.task.crop_length, bs, self.opts.protocol, self.opts.cache_dtype, bar)
        bar.close()
        return time.perf_counter() - start

    def load(self, units: list[EmbedUnit]) -> dict[str, EmbeddedUnit]:
        by_split: dict[str, list[EmbeddedUnit]] = {}
        for unit in units:
            by_split.setdefault(unit.split, []).append(read_unit(unit.path))
        return {s: concat_units(us) for s, us in by_split.items()}

    def _data(self, splits: dict[str, EmbeddedUnit], names: str) -> ProbeData:
        unit = concat_units([splits[n] for n in names.split(",")])
        if self.task.task_type == "frame":
            return _frame_data(self.task, unit, self.hop)
        return ProbeData(torch.from_numpy(unit.pooled.astype(np.float32)), _clip_targets(self.task, unit))

    def check_supported(self) -> None:
        task = self.task
        if task.task_type not in SUPPORTED_TYPES:
            raise NotImplementedError(
                f"task {task.name}: task_type {task.task_type!r} is not supported yet (only {SUPPORTED_TYPES})"
            )

    def run(self) -> ResultRecord:
        """Both stages for this task alone."""
        self.check_supported()
        units = self.units()
        return self.score(units, self.embed(units))

    def score(self, units: list[EmbedUnit], embed_s: float = 0.0) -> ResultRecord:
        """Stage 2: score the task from its committed cache units alone (no encoder needed)."""
        task, opts = self.task, self.opts
        t0 = time.perf_counter()
        splits = self.load(units)
        if task.task_type in SPECIAL_TYPES:
            t1 = time.perf_counter()
            tracks = {"mlp": self._special_track(splits)} if "mlp" in opts.tracks else {}
            return self._record(units, splits, tracks, embed_s, t1 - t0, time.perf_counter() - t1)
        metric = _metric(task, self.hop)
        direction = 1.0 if task.higher_is_better else -1.0

        def selection(logits: Any, data: ProbeData) -> float:  # higher is better for model selection
            return direction * metric(logits, data)

        folds_mlp, folds_knn, tests_mlp, tests_knn = [], [], {}, {}
        t1 = time.perf_counter()
        test_keys: dict[str, list[str]] = {}
        for fold, train_s, valid_s, test_s in _split_roles(task):
            train, valid, test = self._data(splits, train_s), self._data(splits, valid_s), self._data(splits, test_s)
            test_keys[fold] = concat_units([splits[n] for n in test_s.split(",")]).keys
            if "mlp" in opts.tracks:
                cfg = ProbeConfig(
                    epochs=task.epochs,
                    learning_rate=task.learning_rate,
                    batch_size=task.batch_size_train,
                    batch_size_valid=task.batch_size_valid,
                    valid_every=task.valid_every,
                    loss="bce" if task.criterion == "BCEWithLogitsLoss" else "cross_entropy",
                    pos_weight=task.criterion_args.get("pos_weight"),
                    seed=task.seed,
                    device=opts.device,
                )
                result = train_probe(train, valid, task.output_dim, cfg, selection)
                logits = predict(result.model, test, cfg.batch_size_valid or cfg.batch_size, opts.device)
                folds_mlp.append(metric(logits, test))
                tests_mlp[fold] = (logits, test)
            if "knn" in opts.tracks and task.do_knn and task.task_type == "clip":
                scores = knn_scores(
                    train.inputs.numpy(),
                    train.targets.numpy(),
                    test.inputs.numpy(),
                    task.output_dim,
                    protocol=opts.protocol,
                )
                folds_knn.append(accuracy(scores, test.targets.numpy()))
                tests_knn[fold] = (scores, test)
        t2 = time.perf_counter()
        tracks = {}
        for track, folds, tests, fn in (
            ("mlp", folds_mlp, tests_mlp, metric),
            ("knn", folds_knn, tests_knn, lambda s, d: accuracy(s, d.targets.numpy())),
        ):
            if not folds:
                continue
            raw = float(np.mean(folds))
            is_accuracy = track == "knn" or (task.metric == "accuracy" and task.task_type == "clip")
            lo, hi = self._accuracy_interval(tests) if is_accuracy else self._interval(tests, fn)
            norm = task.normalised_score if track == "mlp" else (lambda r: float(r))
            ci = sorted([norm(lo), norm(hi)])
            tracks[track] = {
                "metric": task.metric if track == "mlp" else "accuracy",
                "raw": raw,
                "score": norm(raw),
                "folds": [float(f) for f in folds],
                "ci95": ci,
            }
        self.predictions = (test_keys, {"mlp": tests_mlp, "knn": tests_knn})
        return self._record(units, splits, tracks, embed_s, t1 - t0, t2 - t1)

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
        test_count = sum(len(splits[s]) for s in {r[3] for r in _split_roles(task)})
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
            },
        )

    def _special_track(self, splits: dict[str, EmbeddedUnit]) -> dict[str, Any]:
        """MLP-track entry of a contrastive or asr task: its probe per fold, raw metric, score, bootstrap CI.

        The interval resamples test items (Clotho: clips with all their captions as queries against the
        fixed test gallery; ASR: utterances) within every fold.
        """
        task = self.task
        score_fold = self._retrieval_fold if task.task_type == "contrastive" else self._asr_fold
        folds, subsets, sizes, probes = [], {}, {}, []
        for fold, train_s, valid_s, test_s in _split_roles(task):
            units = [concat_units([splits[n] for n in names.split(",")]) for names in (train_s, valid_s, test_s)]
            on_subset, size, probe = score_fold(*units)
            folds.append(on_subset(np.arange(size)))
            subsets[fold], sizes[fold] = on_subset, size
            probes.append(probe)

        def resampled(draw: dict[str, np.ndarray]) -> float:
            return float(np.mean([subsets[fold](idx) for fold, idx in draw.items()]))

        lo, hi = bootstrap_interval(resampled, sizes, rounds=self.opts.bootstrap_rounds, seed=task.seed)
        raw = float(np.mean(folds))
        return {
            "metric": task.metric,
            "raw": raw,
            "score": task.normalised_score(raw),
            "folds": [float(f) for f in folds],
            "ci95": sorted([task.normalised_score(lo), task.normalised_score(hi)]),
            "probe": probes[0] if len(probes) == 1 else probes,
        }

    def _retrieval_fold(
        self, train: EmbeddedUnit, valid: EmbeddedUnit, test: EmbeddedUnit
    ) -> tuple[Any, int, dict[str, Any]]:
        from xbench.probes import retrieval as rp

        task = self.task
        if task.metric != "recallatk_r1":
            raise NotImplementedError(f"task {task.name}: contrastive tasks are scored by recallatk_r1 only")
        if self._tokenizer is None:
            self._tokenizer = rp.resolve_tokenizer(self.opts.text_tokenizer)
        tokenizer, source = self._tokenizer
        cfg = rp.RetrievalConfig(
            epochs=task.epochs,
            learning_rate=task.learning_rate,
            batch_size=task.batch_size_train,
            batch_size_valid=task.batch_size_valid,
            valid_every=task.valid_every,
            seed=task.seed,
            device=self.opts.device,
        )
        data = [
            rp.RetrievalData(torch.from_numpy(u.pooled.astype(np.float32)), [task.encode_label(m) for m in u.meta])
            for u in (train, valid, test)
        ]
        result = rp.train_retrieval_probe(data[0], data[1], tokenizer, cfg)
        k = data[2].captions_per_clip()
        audio, text = rp.embed(result.model, data[2], tokenizer, cfg.batch_size_valid or cfg.batch_size, cfg.device)
        a2t, t2a = rp.retrieval_hits(audio, text, k)
        probe = {
            "probe": "RetrievalProbe",
            "tokenizer": source,
            "vocab_size": len(tokenizer),
            "hidden": cfg.hidden,
            "captions_per_clip": k,
            "best_epoch": result.best_epoch,
            "best_valid": result.best_valid,
            "recall_a2t": float(a2t.mean()),
            "recall_t2a": float(t2a.mean()),
        }
        return (lambda idx: rp.recall_from_hits(a2t[idx], t2a[idx])), len(a2t), probe

    def _asr_fold(
        self, train: EmbeddedUnit, valid: EmbeddedUnit, test: EmbeddedUnit
    ) -> tuple[Any, int, dict[str, Any]]:
        from xbench.probes import asr as ap

        task, opts = self.task, self.opts
        if task.metric not in ("WER_inv", "WER"):
            raise NotImplementedError(f"task {task.name}: asr tasks are scored by WER_inv or WER only")
        if self._decoder is None:
            self._decoder = ap.load_decoder(opts.asr_decoder, opts.device)
        decoder, tokenizer, name = self._decoder
        xares = opts.protocol == "xares"
        cfg = ap.AsrConfig(
            epochs=task.epochs,
            learning_rate=task.learning_rate,
            batch_size=task.batch_size_train,
            batch_size_valid=task.batch_size_valid,
            valid_every=task.valid_every,
            validation="teacher_forced" if xares else "greedy",
            valid_max_utterances=None if xares else opts.asr_valid_utterances,
            max_new_tokens=opts.asr_max_new_tokens,
            repetition_penalty=1.1 if xares else 1.0,
            seed=task.seed,
            device=opts.device,
        )
        data = [
            ap.AsrData(
                [torch.from_numpy(u.clip_frames(i).astype(np.float32)) for i in range(len(u))],
                [task.encode_label(m) for m in u.meta],
            )
            for u in (train, valid, test)
        ]
        result = ap.train_asr_probe(data[0], data[1], decoder, tokenizer, cfg)
        test_data = data[2]
        hyps = ap.transcribe(
            result.model, test_data, cfg.batch_size_valid or cfg.batch_size, cfg.max_new_tokens, cfg.repetition_penalty
        )
        errors, words = ap.utterance_errors(test_data.texts, hyps)
        adapter = result.model.adapter
        probe = {
            "probe": "AsrProbe",
            "decoder": name,
            "adapter_hidden": adapter.fc_1.out_features,
            "d_model": adapter.proj.out_features,
            "validation": cfg.validation,
            "valid_max_utterances": cfg.valid_max_utterances,
            "decoding": {
                "do_sample": False,
                "num_beams": 1,
                "max_new_tokens": cfg.max_new_tokens,
                "repetition_penalty": cfg.repetition_penalty,
            },
            "best_epoch": result.best_epoch,
            "best_valid": result.best_valid,
            "wer": float(errors.sum() / max(words.sum(), 1)),
            "examples": [{"ref": r, "hyp": h} for r, h in zip(test_data.texts[:5], hyps[:5], strict=True)],
        }

        def on_subset(idx: np.ndarray) -> float:
            total = int(words[idx].sum())
            if total == 0:
                raise ValueError("no reference words in this resample")
            wer = float(errors[idx].sum()) / total
            return wer if task.metric == "WER" else max(0.0, 1.0 - wer)

        return on_subset, len(errors), probe

    def _accuracy_interval(self, tests: dict[str, tuple[Any, ProbeData]]) -> tuple[float, float]:
        """Bootstrap of accuracy from per-item correctness (the same draws as :meth:`_interval`)."""
        correct = {
            fold: (np.asarray(scores).argmax(axis=-1) == data.targets.numpy()).astype(np.float64)
            for fold, (scores, data) in tests.items()
        }
        sizes = {fold: len(c) for fold, c in correct.items()}

        def resampled(draw: dict[str, np.ndarray]) -> float:
            return float(np.mean([correct[fold][idx].mean() for fold, idx in draw.items()]))

        return bootstrap_interval(resampled, sizes, rounds=self.opts.bootstrap_rounds, seed=self.task.seed)

    def _interval(self, tests: dict[str, tuple[Any, ProbeData]], fn: Any) -> tuple[float, float]:
        sizes = {fold: len(data) for fold, (_, data) in tests.items()}

        def resampled(draw: dict[str, np.ndarray]) -> float:
            vals = []
            for fold, idx in draw.items():
                logits, data = tests[fold]
                picked = [logits[i] for i in idx] if isinstance(logits, list) else logits[idx]
                vals.append(fn(picked, _subset(data, idx)))
            return float(np.mean(vals))

        return bootstrap_interval(resampled, sizes, rounds=self.opts.bootstrap_rounds, seed=self.task.seed)


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
        "text_tokenizer": opts.text_tokenizer if task.task_type == "contrastive" else None,
        "asr": [opts.asr_decoder, opts.asr_max_new_tokens, opts.asr_valid_utterances]
        if task.task_type == "asr"
        else None,
        "xbench_version": __version__,
    }


def result_path(output_dir: Path, slug: str, task: TaskConfig, protocol: str) -> Path:
    """Where the JSON result of (encoder, task) goes."""
    return output_dir / slug / protocol / f"{task.name}@v{task.version}.json"


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
    if opts.overwrite not in OVERWRITE:
        raise ValueError(f"overwrite must be one of {OVERWRITE}, got {opts.overwrite!r}")
    instance = load_encoder(encoder)
    validate_attributes(instance)
    identity = encoder_identity(instance, opts.harness.describe())
    slug = encoder_slug(instance, encoder_fingerprint(identity))
    lazy = _LazyEncoder(instance, opts.harness)
    del instance  # from here on only `lazy` holds the encoder, and it lets go after stage 1
    out_dir = Path(opts.output_dir) if opts.output_dir else None

    saved: dict[str, ResultRecord] = {}
    pending: list[tuple[TaskRunner, list[EmbedUnit], float]] = []
    runners = []
    for task in tasks:
        settings = run_settings(task, slug, opts)
        path = result_path(out_dir, slug, task, opts.protocol) if out_dir else None
        if path is not None and path.is_file() and opts.overwrite != "always":
            old = ResultRecord.read(path)
            if old.run_settings == settings:  # the declaration fields outside the fingerprint may have changed
                saved[task.name] = replace(
                    old,
                    formal_name=task.formal_name or task.name,
                    domain=task.domain,
                    private=task.private,
                    weight=task.eval_weight,
                )
                continue
            if opts.overwrite == "never":
                raise FileExistsError(
                    f"task {task.name}: {path} was made with other settings and overwrite='never' keeps it"
                )
        runner = TaskRunner(task, lazy, identity, slug, opts)
        runner.check_supported()
        runners.append(runner)
    # stage 1: embed every missing unit of every task, then release the encoder
    for runner in runners:
        units = runner.units()
        pending.append((runner, units, runner.embed(units)))
    lazy.release()
    # stage 2: score from the cache alone
    for runner, units, embed_s in pending:
        result = runner.score(units, embed_s)
        result.run_settings = run_settings(runner.task, slug, opts)
        if out_dir is not None:
            path = result_path(out_dir, slug, runner.task, opts.protocol)
            atomic_write_json(path, result.to_dict())
            if runner.predictions is not None:
                from xbench.report.compare import predictions_path, write_predictions

                write_predictions(predictions_path(path), runner.task, runner.hop, *runner.predictions)
        saved[runner.task.name] = result

    records = [saved[task.name] for task in tasks]
    frame = table(records)
    if out_dir is not None:
        write_summary(out_dir / slug / opts.protocol, frame, records)
    return frame


def averages(frame: Any) -> list[dict[str, Any]]:
    """Weighted averages of an :func:`evaluate` frame (all / public / private / per domain, per track)."""
    return aggregate(scored_tasks(frame))


def write_summary(folder: Path, frame: Any, records: list[ResultRecord]) -> None:
    """``summary.json`` (results + averages) and ``summary.csv`` (one row per task and track), atomically."""
    results = [r.to_dict() for r in records]
    atomic_write_json(folder / "summary.json", {"results": results, "averages": averages(frame)})
    atomic_write_bytes(folder / "summary.csv", frame.to_csv(index=False).encode())


def summary_table(frame: Any) -> str:
    """The closing table: one row per task with MLP and kNN scores, then the weighted averages."""
    if frame.empty:
        return "(no results)"
    wide = frame.pivot_table(index="formal_name", columns="track", values="score", aggfunc="first")
    lines = [wide.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-")]
    for row in averages(frame):
        lines.append(
            f"Weighted average {row['track'].upper()} ({row['group']}, {row['tasks']} tasks): {row['score']:.3f}"
        )
    return "\n".join(lines)


__all__ = ["RunOptions", "evaluate", "averages", "summary_table", "split_names"]

