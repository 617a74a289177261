"""Scorers: how each task type turns its cached embeddings into track results, registered by type.

A scorer takes a :class:`ScoreInput` (the task, its loaded cache splits, the run options, the encoder's
hop) and returns :class:`Scored`: ``{track: {"metric", "raw", "score", "folds", "ci95", ...}}`` plus,
optionally, per-item test predictions for ``xbench compare``. :class:`xbench.pipeline.run.TaskRunner`
looks the scorer up by ``task.task_type``; a new task type is one :func:`register_scorer` call here and
one :func:`xbench.taskspec.config.register_task_type` call (which label kinds it accepts).

Built in (X-ARES 0.1.3, ``xares/task.py``, ``xares/trainer.py``):

* ``clip``: the MLP probe on pooled vectors (:mod:`xbench.probes.linear`) and the kNN track;
* ``frame``: the MLP probe per frame, no kNN;

  under the default protocol the MLP score is the mean over several probe seeds (default 5, trained
  together by :mod:`xbench.probes.multiseed`), with the per-seed scores and their spread in the track's
  ``seeds``; ``--protocol xares`` trains one probe, as X-ARES does;
* ``contrastive``: the audio-text retrieval probe (:mod:`xbench.probes.retrieval`), MLP track only;
* ``asr``: the adapter into a frozen decoder (:mod:`xbench.probes.asr`), MLP track only.

Every interval is a 95 % bootstrap of the test items within each fold (:func:`bootstrap_interval`), and
of the probe seeds too for a score averaged over seeds (a two-level bootstrap; the docstring of
:func:`bootstrap_interval` says why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from xbench.embed.cache import EmbeddedUnit, concat_units, subset_unit
from xbench.probes.knn import knn_scores
from xbench.probes.linear import ProbeConfig, ProbeData, predict, stack_targets, train_probe
from xbench.probes.multiseed import DEFAULT_PROBE_SEEDS, probe_seeds, train_probes
from xbench.probes.xares_recipe import XaresRecipe, encoded_shard_sizes
from xbench.scoring.metrics import CLIP_METRICS, METRICS, accuracy, f1_from_counts, segment_counts
from xbench.scoring.scores import bootstrap_draws, bootstrap_interval, percentile_interval, seed_resampled
from xbench.taskspec.config import TaskConfig

if TYPE_CHECKING:
    from xbench.pipeline.run import RunOptions


def split_roles(task: TaskConfig) -> list[tuple[str, str, str, str]]:
    """(fold label, train split(s), valid split, test split) per evaluation round; splits comma-joined."""
    if task.k_fold_splits is None:
        return [("", task.train_split, task.valid_split, task.test_split)]
    folds = [str(k) for k in task.k_fold_splits]
    return [(k, ",".join(f for f in folds if f != k), k, k) for k in folds]


@dataclass
class ScoreInput:
    """What a scorer gets: the task, its cache splits by name, the run options, the encoder's hop (ms)."""

    task: TaskConfig
    splits: dict[str, EmbeddedUnit]
    options: RunOptions
    hop: float

    def unit(self, names: str) -> EmbeddedUnit:
        """The cached items of one or more (comma-joined) splits, in order."""
        return concat_units([self.splits[n] for n in names.split(",")])

    def folds(self) -> list[tuple[str, EmbeddedUnit, EmbeddedUnit, EmbeddedUnit]]:
        """(fold label, train, valid, test) units per evaluation round (see :func:`split_roles`); where
        :func:`holds_out_validation`, the valid unit is a seeded share of the round's training clips, not its
        test split, and train is the rest (:meth:`full_train` is the whole training split)."""
        rounds = []
        for index, (k, tr, va, te) in enumerate(split_roles(self.task)):
            train, valid = self.unit(tr), self.unit(va)
            if holds_out_validation(self.task, self.options):
                try:
                    train, valid = carve_validation(train, self.task.seed, index)
                except ValueError as exc:
                    raise ValueError(f"task {self.task.name}, fold {k or '-'}: {exc}") from None
            rounds.append((k, train, valid, self.unit(te)))
        return rounds

    def full_train(self, fold: str) -> EmbeddedUnit:
        """Round ``fold``'s whole training split (what the parameter-free kNN track uses)."""
        return self.unit(next(tr for k, tr, _, _ in split_roles(self.task) if k == fold))


VALID_SHARE = 0.1  # of the training clips (source files), held out for model selection where valid is test


def holds_out_validation(task: TaskConfig, options: RunOptions) -> bool:
    """True under the default protocol for a task that selects its probe on test data in X-ARES (k-fold: the
    held-out fold; or valid split = test split): the probe then selects its epoch on a seeded
    :data:`VALID_SHARE` of the training clips instead. Not where train is test as well (Subway broadcast):
    nothing is left to hold out, and X-ARES's recipe is kept."""
    if options.protocol == "xares":
        return False
    return task.is_kfold or (task.valid_split == task.test_split and task.train_split != task.test_split)


def carve_validation(train: EmbeddedUnit, seed: int, index: int) -> tuple[EmbeddedUnit, EmbeddedUnit]:
    """``train`` split into (train, valid): a seeded :data:`VALID_SHARE` of its source files (at least one;
    crops of a file stay together) for validation, from a generator of (``seed``, round ``index``)."""
    groups = list(dict.fromkeys(train.source_keys))
    if len(groups) < 2:
        raise ValueError(f"{len(train)} training clip(s) from {len(groups)} file(s): too few to hold out validation")
    order = np.random.default_rng([seed, index]).permutation(len(groups))
    held = {groups[i] for i in order[: max(1, round(VALID_SHARE * len(groups)))]}
    in_valid = np.array([k in held for k in train.source_keys])
    return subset_unit(train, np.flatnonzero(~in_valid)), subset_unit(train, np.flatnonzero(in_valid))


@dataclass
class Scored:
    """A scorer's result: the result JSON's ``tracks`` and, for ``xbench compare``, test predictions.

    ``predictions``: ``({fold: test item keys}, {track: {fold: (scores or logits, ProbeData)}}[, {track:
    probe seeds}])`` as :func:`xbench.report.compare.write_predictions` takes them, or None; a track with
    probe seeds has a list of per-seed outputs in place of the scores or logits.
    """

    tracks: dict[str, dict[str, Any]]
    predictions: tuple[Any, ...] | None = None


ScoreFn = Callable[[ScoreInput], Scored]


@dataclass(frozen=True)
class Scorer:
    """A registered scorer and the run options its results depend on ({run_settings key: fn(options)})."""

    task_type: str
    score: ScoreFn
    settings: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)


SCORERS: dict[str, Scorer] = {}
"""Every scorer by task type, in registration order."""


def register_scorer(
    task_type: str, settings: Mapping[str, Callable[[Any], Any]] | None = None, replace: bool = False
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator: ``fn(ScoreInput) -> Scored`` scores tasks of ``task_type``.

    ``settings`` names the run options that change this type's results, as {key: fn(RunOptions)}; a saved
    result is reused only when they match (every registered key appears in every result's
    ``run_settings``, None for the other types).
    """

    def add(fn: ScoreFn) -> ScoreFn:
        if task_type in SCORERS and not replace:
            raise ValueError(f"a scorer for task_type {task_type!r} is already registered")
        SCORERS[task_type] = Scorer(task_type, fn, dict(settings or {}))
        return fn

    return add


def get_scorer(task: TaskConfig) -> Scorer:
    """The scorer of ``task``'s type; ``NotImplementedError`` when none is registered."""
    scorer = SCORERS.get(task.task_type)
    if scorer is None:
        raise NotImplementedError(
            f"task {task.name}: task_type {task.task_type!r} is not supported yet (only {tuple(SCORERS)})"
        )
    return scorer


def scorer_settings(task: TaskConfig, options: RunOptions) -> dict[str, Any]:
    """The run-settings entries of every registered scorer: ``task``'s own values, None for the others'."""
    own = get_scorer(task).settings
    keys = dict.fromkeys(key for scorer in SCORERS.values() for key in scorer.settings)
    return {key: own[key](options) if key in own else None for key in keys}


def _training(task: TaskConfig, options: RunOptions) -> dict[str, Any]:
    """The task's probe-training settings, as every probe config (linear, retrieval, ASR) names them."""
    return {
        "epochs": task.epochs,
        "learning_rate": task.learning_rate,
        "batch_size": task.batch_size_train,
        "batch_size_valid": task.batch_size_valid,
        "valid_every": task.valid_every,
        "seed": task.seed,
        "device": options.device,
    }


# -- clip and frame tasks: the MLP probe (and kNN for clips) -----------------------------------------


def probe_seeds_setting(options: RunOptions) -> int | list[int]:
    """The MLP track's probe seeds as run settings record them: a count from the task's seed, or the seeds.

    ``--protocol xares`` trains one probe (X-ARES's); the default protocol ``options.probe_seeds`` probes
    (default :data:`~xbench.probes.multiseed.DEFAULT_PROBE_SEEDS`).
    """
    if options.protocol == "xares":
        return 1
    value = DEFAULT_PROBE_SEEDS if options.probe_seeds is None else options.probe_seeds
    return value if isinstance(value, int) else [int(s) for s in value]


def mlp_probe_seeds(task: TaskConfig, options: RunOptions) -> list[int]:
    """The seeds of ``task``'s MLP probes: ``task.seed, task.seed + 1, …`` for a count, else as given."""
    value = probe_seeds_setting(options)
    return probe_seeds(task.seed, value) if isinstance(value, int) else value


def _mlp_outputs(
    data: tuple[ProbeData, ProbeData, ProbeData],
    outputs: int,
    cfg: ProbeConfig,
    seeds: list[int],
    select: Any,
    **kw: Any,
) -> list:
    """Test logits of one probe per seed: ``train_probe`` (``kw``: its options) for one seed, else the heads
    trained together (:func:`~xbench.probes.multiseed.train_probes`)."""
    train, valid, test = data
    bs = cfg.batch_size_valid or cfg.batch_size
    if len(seeds) == 1:
        result = train_probe(train, valid, outputs, replace(cfg, seed=seeds[0]), select, **kw)
        return [predict(result.model, test, bs, cfg.device)]
    stacked = train_probes(train, valid, outputs, cfg, seeds, select)
    return predict(stacked.model, test, bs, cfg.device, heads=len(seeds))


DataFn = Callable[[TaskConfig, EmbeddedUnit, float], ProbeData]
MetricFn = Callable[[TaskConfig, float], Callable[[Any, ProbeData], float]]


def _clip_metric(task: TaskConfig, hop: float) -> Callable[[Any, ProbeData], float]:
    """``fn(scores, data) -> raw metric`` of a clip probe: a metric of the table that takes ``[N, C]`` scores."""
    fn = CLIP_METRICS.get(task.metric)
    if fn is None:
        raise NotImplementedError(f"task {task.name}: metric {task.metric!r} is not supported for clip probes")
    return lambda logits, data: fn(logits, data.targets.numpy())


SEGMENT_F1 = {"segmentf1_macro": "macro", "segmentf1_micro": "micro"}


def _segment_length(task: TaskConfig) -> float:
    """The segment length (s) of a segment-F1 task (default 1 s)."""
    return float(dict(task.metric_args).get("segment_length_in_s", 1.0))


def _frame_metric(task: TaskConfig, hop: float) -> Callable[[Any, ProbeData], float]:
    """``fn(logits, data) -> raw metric`` of a frame probe: segment F1 over ``segment_length_in_s`` (default 1 s).

    Only the segment-F1 metrics: ``xbench compare`` recomputes frame metrics from binarised frame predictions.
    """
    if task.metric not in ("segmentf1_macro", "segmentf1_micro"):
        raise NotImplementedError(
            f"task {task.name}: frame probes are scored by segmentf1_macro or segmentf1_micro, not {task.metric!r}"
        )
    fn = METRICS[task.metric].fn
    seg = _segment_length(task)
    return lambda logits, data: fn(logits, [t.numpy() for t in data.targets], hop, seg)


def _subset(data: ProbeData, idx: np.ndarray) -> ProbeData:
    if data.frame_level:
        return ProbeData([data.inputs[i] for i in idx], [data.targets[i] for i in idx])
    t = torch.as_tensor(idx, dtype=torch.long)
    return ProbeData(data.inputs[t], data.targets[t])


def _clip_data(task: TaskConfig, unit: EmbeddedUnit, hop: float) -> ProbeData:
    targets = stack_targets([task.encode_label(m) for m in unit.meta])
    return ProbeData(torch.from_numpy(unit.pooled.astype(np.float32)), targets)


def _frame_data(task: TaskConfig, unit: EmbeddedUnit, hop: float) -> ProbeData:
    xs, ys = [], []
    for i, meta in enumerate(unit.meta):
        frames = torch.from_numpy(unit.clip_frames(i).astype(np.float32))
        xs.append(frames)
        ys.append(torch.from_numpy(task.frame_targets(meta, hop, len(frames)).T.astype(np.float32)))  # [T, C]
    return ProbeData(xs, ys)


PerSeed = dict[str, tuple[list[Any], ProbeData]]
"""{fold: (one test output per probe seed, the test data)}: what the intervals resample."""


def _summed_interval(
    per_item: dict[str, np.ndarray], metric: Callable[[np.ndarray, int], np.ndarray], rounds: int, seed: int
) -> tuple[float, float]:
    """:func:`_interval` of a metric computed from per-item statistics that add up, every round at once.

    ``per_item``: {fold: ``[seeds, items, ...]``}; ``metric(sums [..., *rest], items)`` -> ``[...]``, the metric of
    items whose statistics sum to ``sums``. A round sums the drawn items' statistics (the same draws and
    :func:`seed_resampled` rounds as :func:`_interval`), so no item is looked at again.
    """
    n_seeds = len(next(iter(per_item.values())))
    sizes = {fold: c.shape[1] for fold, c in per_item.items()}
    draws = bootstrap_draws(sizes, rounds, seed, n_seeds if n_seeds > 1 else None)
    seeds = np.stack([s for _, s in draws]) if n_seeds > 1 else np.zeros((rounds, 1), dtype=np.int64)  # [R, S]
    first = seeds[:, 0]
    values = np.zeros(rounds)
    for fold, c in per_item.items():
        n, rest = c.shape[1], c.shape[2:]
        drawn = np.zeros((rounds, n))  # how often each round drew each item
        np.add.at(drawn, (np.arange(rounds)[:, None], np.stack([d[fold] for d, _ in draws])), 1)
        summed = np.zeros((rounds, *rest))
        for s in np.unique(first):  # the drawn items' statistics of each round's first seed
            rows = first == s
            summed[rows] = (drawn[rows] @ c[s].reshape(n, -1)).reshape(-1, *rest)
        full = metric(c.sum(axis=1), n)  # [S]: each seed's metric on all items
        values += metric(summed, n) + (full[seeds].mean(axis=1) - full[first])
    return percentile_interval(values / len(per_item))


def _accuracy_interval(tests: PerSeed, rounds: int, seed: int) -> tuple[float, float]:
    """:func:`_summed_interval` of accuracy: per-item correctness ``[seeds, items]``."""
    correct = {
        fold: np.stack([np.asarray(o).argmax(axis=-1) == data.targets.numpy() for o in outputs]).astype(np.float64)
        for fold, (outputs, data) in tests.items()
    }
    return _summed_interval(correct, lambda hits, n: hits / n, rounds, seed)


def _segment_f1_interval(tests: PerSeed, task: TaskConfig, hop: float, rounds: int) -> tuple[float, float]:
    """:func:`_summed_interval` of segment F1: each clip's segment counts (:func:`segment_counts`), pooled once."""
    seg, average = _segment_length(task), SEGMENT_F1[task.metric]
    counts = {
        fold: np.stack([segment_counts(o, [t.numpy() for t in data.targets], hop, seg) for o in outputs])
        for fold, (outputs, data) in tests.items()
    }  # {fold: [seeds, clips, classes, 3]}
    return _summed_interval(counts, lambda sums, _: f1_from_counts(sums, average), rounds, task.seed)


def _on_items(fn: Any, outputs: list[Any], data: ProbeData, idx: np.ndarray) -> Callable[[int], float]:
    """``seed -> fn(that seed's outputs on items idx, the data of items idx)``."""
    subset = _subset(data, idx)
    return lambda s: fn([outputs[s][i] for i in idx] if isinstance(outputs[s], list) else outputs[s][idx], subset)


def _interval(tests: PerSeed, fn: Any, rounds: int, seed: int, full: dict[str, list[float]]) -> tuple[float, float]:
    """Bootstrap of ``fn(outputs, data)`` over the test items within each fold and the probe seeds.

    ``full``: {fold: each seed's metric on all the fold's items}; a round is :func:`seed_resampled`.
    """
    sizes = {fold: len(data) for fold, (_, data) in tests.items()}
    n_seeds = len(next(iter(tests.values()))[0])

    def resampled(draw: dict[str, np.ndarray], seeds: np.ndarray = np.zeros(1, dtype=np.int64)) -> float:
        return float(
            np.mean([seed_resampled(_on_items(fn, *tests[f], idx), full[f], seeds) for f, idx in draw.items()])
        )

    return bootstrap_interval(resampled, sizes, rounds=rounds, seed=seed, n_seeds=n_seeds if n_seeds > 1 else None)


def _xares_recipe(inp: ScoreInput, index: int) -> XaresRecipe | None:
    """Under ``--protocol xares``: how X-ARES initialises and orders evaluation round ``index``'s probe."""
    task = inp.task
    if inp.options.protocol != "xares":
        return None
    sizes = [len(inp.splits[name]) for name in split_roles(task)[index][1].split(",")]
    shards = encoded_shard_sizes(sizes, task.save_encoded_per_batches)
    return XaresRecipe(task.seed, index, shards, task.epochs, task.valid_every)


def _probe_tracks(inp: ScoreInput, data_of: DataFn, metric_of: MetricFn, knn: bool) -> Scored:
    """MLP probe per fold (and kNN when ``knn``): raw metric, 0–1 score, folds, 95 % interval per track.

    ``data_of(task, unit, hop)`` builds a split's probe data, ``metric_of(task, hop)`` the metric function.
    """
    task, opts = inp.task, inp.options
    metric = metric_of(task, inp.hop)
    direction = 1.0 if task.higher_is_better else -1.0

    def selection(logits: Any, data: ProbeData) -> float:  # higher is better for model selection
        return direction * metric(logits, data)

    seeds = mlp_probe_seeds(task, opts)
    folds_mlp, folds_knn, tests_mlp, tests_knn = [], [], {}, {}  # per fold: one raw metric / output per seed
    test_keys: dict[str, list[str]] = {}
    for index, (fold, *units) in enumerate(inp.folds()):
        train, valid, test = (data_of(task, u, inp.hop) for u in units)
        test_keys[fold] = units[2].keys
        if "mlp" in opts.tracks:
            cfg = ProbeConfig(
                **_training(task, opts),
                loss="bce" if task.criterion == "BCEWithLogitsLoss" else "cross_entropy",
                pos_weight=task.criterion_args.get("pos_weight"),
            )
            xares = _xares_recipe(inp, index)
            outputs = _mlp_outputs((train, valid, test), task.output_dim, cfg, seeds, selection, xares=xares)
            folds_mlp.append([metric(logits, test) for logits in outputs])
            tests_mlp[fold] = (outputs, test)
        if "knn" in opts.tracks and task.do_knn and knn:
            if holds_out_validation(task, opts):  # the kNN track selects nothing: it keeps the whole training split
                train = data_of(task, inp.full_train(fold), inp.hop)
            x_train, y_train = train.inputs.numpy(), train.targets.numpy()
            scores = knn_scores(x_train, y_train, test.inputs.numpy(), task.output_dim, protocol=opts.protocol)
            folds_knn.append([accuracy(scores, test.targets.numpy())])
            tests_knn[fold] = ([scores], test)
    tracks = {}
    for track, folds, tests in (("mlp", folds_mlp, tests_mlp), ("knn", folds_knn, tests_knn)):
        if not folds:
            continue
        per_seed = np.mean(folds, axis=0)  # [seeds]: each seed's raw metric, folds averaged
        raw = float(np.mean(per_seed))
        rounds = opts.bootstrap_rounds
        if track == "knn" or task.metric == "accuracy":
            lo, hi = _accuracy_interval(tests, rounds, task.seed)
        elif task.metric in SEGMENT_F1 and all(data.frame_level for _, data in tests.values()):
            lo, hi = _segment_f1_interval(tests, task, inp.hop, rounds)
        else:
            lo, hi = _interval(tests, metric, rounds, task.seed, dict(zip(tests, folds, strict=True)))
        norm = task.normalised_score if track == "mlp" else (lambda r: float(r))
        tracks[track] = {
            "metric": task.metric if track == "mlp" else "accuracy",
            "raw": raw,
            "score": norm(raw),
            "folds": [float(np.mean(f)) for f in folds],
            "ci95": sorted([norm(lo), norm(hi)]),
        }
        if track == "mlp" and opts.protocol != "xares":
            raws = [float(r) for r in per_seed]
            tracks[track]["seeds"] = {"probe_seeds": seeds, "raw": raws, "score": [norm(r) for r in raws]}
    knn_tests = {fold: (outputs[0], test) for fold, (outputs, test) in tests_knn.items()}
    tests_by_track = {"mlp": tests_mlp, "knn": knn_tests}
    predictions = (test_keys, tests_by_track, {"mlp": seeds}) if tests_mlp or tests_knn else None
    return Scored(tracks, predictions)


@register_scorer("clip", settings={"probe_seeds": probe_seeds_setting})
def score_clip(inp: ScoreInput) -> Scored:
    """Clip tasks: the MLP probe on pooled vectors and the kNN track (when the task has ``do_knn``)."""
    return _probe_tracks(inp, _clip_data, _clip_metric, knn=True)


@register_scorer("frame", settings={"probe_seeds": probe_seeds_setting})
def score_frame(inp: ScoreInput) -> Scored:
    """Frame tasks: the MLP probe on every frame (targets at the encoder's hop); no kNN track."""
    return _probe_tracks(inp, _frame_data, _frame_metric, knn=False)


# -- contrastive and asr tasks: their own probe, MLP track only ---------------------------------------

FoldScore = tuple[Callable[[np.ndarray], float], int, dict[str, Any]]
"""(raw metric on a subset of test items, test item count, probe description) of one fold."""


def _fold_track(inp: ScoreInput, score_fold: Callable[[EmbeddedUnit, EmbeddedUnit, EmbeddedUnit], FoldScore]) -> Scored:
    """MLP-track entry of a task scored by its own probe: per fold, raw metric, score, bootstrap CI.

    The interval resamples test items (Clotho: clips with all their captions as queries against the
    fixed test gallery; ASR: utterances) within every fold.
    """
    task = inp.task
    if "mlp" not in inp.options.tracks:
        return Scored({})
    folds, subsets, sizes, probes = [], {}, {}, []
    for fold, *units in inp.folds():
        on_subset, size, probe = score_fold(*units)
        folds.append(on_subset(np.arange(size)))
        subsets[fold], sizes[fold] = on_subset, size
        probes.append(probe)

    def resampled(draw: dict[str, np.ndarray]) -> float:
        return float(np.mean([subsets[fold](idx) for fold, idx in draw.items()]))

    lo, hi = bootstrap_interval(resampled, sizes, rounds=inp.options.bootstrap_rounds, seed=task.seed)
    raw = float(np.mean(folds))
    track = {
        "metric": task.metric,
        "raw": raw,
        "score": task.normalised_score(raw),
        "folds": [float(f) for f in folds],
        "ci95": sorted([task.normalised_score(lo), task.normalised_score(hi)]),
        "probe": probes[0] if len(probes) == 1 else probes,
    }
    return Scored({"mlp": track})


@register_scorer("contrastive", settings={"text_tokenizer": lambda opts: opts.text_tokenizer})
def score_contrastive(inp: ScoreInput) -> Scored:
    """Audio-text retrieval (Clotho): the retrieval probe per fold, scored by R@1 (``recallatk_r1``)."""
    from xbench.probes import retrieval as rp

    task, opts = inp.task, inp.options
    loaded: list[tuple[Any, str]] = []  # the tokenizer, loaded on first use

    def score_fold(train: EmbeddedUnit, valid: EmbeddedUnit, test: EmbeddedUnit) -> FoldScore:
        if task.metric != "recallatk_r1":
            raise NotImplementedError(f"task {task.name}: contrastive tasks are scored by recallatk_r1 only")
        if not loaded:
            loaded.append(rp.resolve_tokenizer(opts.text_tokenizer))
        tokenizer, source = loaded[0]
        cfg = rp.RetrievalConfig(**_training(task, opts))
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

    return _fold_track(inp, score_fold)


@register_scorer(
    "asr", settings={"asr": lambda opts: [opts.asr_decoder, opts.asr_max_new_tokens, opts.asr_valid_utterances]}
)
def score_asr(inp: ScoreInput) -> Scored:
    """Speech recognition (LibriSpeech): the adapter into a frozen decoder per fold, scored by (i)WER."""
    from xbench.probes import asr as ap

    task, opts = inp.task, inp.options
    loaded: list[tuple[Any, Any, str]] = []  # the decoder, loaded on first use

    def score_fold(train: EmbeddedUnit, valid: EmbeddedUnit, test: EmbeddedUnit) -> FoldScore:
        if task.metric not in ("WER_inv", "WER"):
            raise NotImplementedError(f"task {task.name}: asr tasks are scored by WER_inv or WER only")
        if not loaded:
            loaded.append(ap.load_decoder(opts.asr_decoder, opts.device))
        decoder, tokenizer, name = loaded[0]
        xares = opts.protocol == "xares"
        cfg = ap.AsrConfig(
            **_training(task, opts),
            validation="teacher_forced" if xares else "greedy",
            valid_max_utterances=None if xares else opts.asr_valid_utterances,
            max_new_tokens=opts.asr_max_new_tokens,
            repetition_penalty=1.1 if xares else 1.0,
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
        bs = cfg.batch_size_valid or cfg.batch_size
        hyps = ap.transcribe(result.model, test_data, bs, cfg.max_new_tokens, cfg.repetition_penalty)
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

    return _fold_track(inp, score_fold)
