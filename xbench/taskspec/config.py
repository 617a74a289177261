"""Task declarations: a validated, frozen ``TaskConfig`` and a declarative ``LabelSpec``.

Field names follow X-ARES 0.1.3's ``xares.task.TaskConfig`` wherever X-ARES has the field. What X-ARES
expresses as code (``label_processor``, ``merge_processor``, a criterion module) is data here:
``labels`` (a :class:`LabelSpec`), ``criterion`` (a ``torch.nn`` class name) and ``criterion_args``.

Constructing a ``TaskConfig`` has no side effects: unlike X-ARES it does not seed the global RNGs nor
set torch's thread count, and this module does not import torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xbench.scoring.metrics import METRICS

DOMAINS = ("speech", "sound", "music")
LABEL_KINDS = ("class", "index", "binary_map", "multilabel", "events", "notes", "text", "captions")


@dataclass(frozen=True)
class TaskTypeInfo:
    """What a task type accepts: the label kinds of its declarations, and whether it needs ``output_dim``."""

    label_kinds: tuple[str, ...]
    needs_output_dim: bool = True


TASK_TYPES: dict[str, TaskTypeInfo] = {}
"""Every task type by name. Scoring a type is :func:`xbench.pipeline.scorers.register_scorer`'s part."""


def register_task_type(
    name: str, label_kinds: Iterable[str], needs_output_dim: bool = True, replace: bool = False
) -> TaskTypeInfo:
    """Add a task type to :data:`TASK_TYPES` (a name already there is an error unless ``replace``)."""
    if not isinstance(name, str) or not _IDENT_RE.match(name):
        raise ValueError(f"task type {name!r} must be an identifier")
    if name in TASK_TYPES and not replace:
        raise ValueError(f"task type {name!r} is already registered")
    kinds = tuple(label_kinds)
    unknown = [k for k in kinds if k not in LABEL_KINDS]
    if not kinds or unknown:
        raise ValueError(f"task type {name!r}: label kinds must be some of {LABEL_KINDS}, got {kinds!r}")
    TASK_TYPES[name] = info = TaskTypeInfo(kinds, bool(needs_output_dim))
    return info


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CHECKSUM_RE = re.compile(r"^(md5:[0-9a-f]{32}|sha256:[0-9a-f]{64})$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

register_task_type("clip", ("class", "index", "binary_map", "multilabel"))
register_task_type("frame", ("events", "notes"))
register_task_type("contrastive", ("captions",), needs_output_dim=False)
register_task_type("asr", ("text",), needs_output_dim=False)


class TaskConfigError(ValueError):
    """An invalid task declaration; the message names the task and the field."""


class LabelError(ValueError):
    """A json label that the task's :class:`LabelSpec` cannot encode."""


def _err(task: str, fld: str, msg: str) -> TaskConfigError:
    return TaskConfigError(f"task {task!r}: field {fld!r}: {msg}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _sec_to_frames(seconds: float, hop_ms: float) -> int:
    # exactly X-ARES's arithmetic (desed/maestro ``sec_to_frames``), float rounding included
    return math.ceil(seconds / (hop_ms / 1000))


def _pad_or_trim(target: np.ndarray, n_frames: int) -> np.ndarray:
    width = target.shape[-1]
    if width > n_frames:
        return np.ascontiguousarray(target[..., :n_frames])
    if width < n_frames:
        return np.pad(target, ((0, 0), (0, n_frames - width)))
    return target


@dataclass(frozen=True)
class LabelSpec:
    """How a shard's json becomes a training target (data, not code).

    kinds:
      ``class``      ``json[field]`` looked up in ``classes``; unknown → ``default`` if set, else :class:`LabelError`
      ``index``      ``json[field]`` is already the class index (``0 <= i < num_classes``)
      ``binary_map`` ``0 if json[field] == zero_value else 1``; with ``zero_value=None``: ``int(json[field])`` in {0, 1}
      ``multilabel`` ``json[field].split(separator)`` → multi-hot list over ``classes``
      ``events``     list of ``{start_key, end_key, field}`` events → frame targets (:meth:`frame_targets`)
      ``notes``      list of ``{start_key, end_key, field}`` notes → frame targets (``field`` value in ``classes``)
      ``text``       ``json[field]`` (a transcript)
      ``captions``   the json dict's values (or ``json[field]``'s), in order

    ``classes_file`` names a JSON list of classes (relative to the declaration's folder); the task
    registry reads it into ``classes``. ``num_classes`` is filled from ``classes`` when they are known.
    """

    kind: str
    field: str | None = None
    classes: tuple[Any, ...] | None = None
    classes_file: str | None = None
    default: int | None = None
    num_classes: int | None = None
    zero_value: Any = None
    separator: str | None = None
    start_key: str | None = None
    end_key: str | None = None
    clip_seconds: float | None = None

    def __post_init__(self) -> None:
        kind = self.kind
        if kind not in LABEL_KINDS:
            raise LabelError(f"labels.kind {kind!r} is not one of {LABEL_KINDS}")
        if self.classes is not None:
            classes = tuple(self.classes)
            if not classes:
                raise LabelError("labels.classes is empty")
            if len(set(classes)) != len(classes):
                dup = sorted({str(c) for c in classes if classes.count(c) > 1})
                raise LabelError(f"labels.classes has duplicates: {dup[:5]}")
            if self.num_classes is not None and self.num_classes != len(classes):
                raise LabelError(f"labels.num_classes={self.num_classes} but {len(classes)} classes are listed")
            object.__setattr__(self, "classes", classes)
            object.__setattr__(self, "num_classes", len(classes))
            object.__setattr__(self, "_index", {c: i for i, c in enumerate(classes)})
        if self.num_classes is not None and (not _is_int(self.num_classes) or self.num_classes < 1):
            raise LabelError(f"labels.num_classes must be a positive int, got {self.num_classes!r}")
        if kind == "binary_map":
            if self.num_classes not in (None, 2):
                raise LabelError("labels.num_classes of a binary_map is 2")
            object.__setattr__(self, "num_classes", 2)
        needs_classes = kind in ("class", "multilabel", "events", "notes")
        if needs_classes and self.classes is None and self.classes_file is None:
            raise LabelError(f"labels of kind {kind!r} need classes or classes_file")
        if kind not in ("captions",) and not self.field:
            raise LabelError(f"labels of kind {kind!r} need a field (the json key)")
        if kind in ("multilabel",) and not self.separator:
            raise LabelError("labels of kind 'multilabel' need a separator")
        if kind in ("events", "notes") and not (self.start_key and self.end_key):
            raise LabelError(f"labels of kind {kind!r} need start_key and end_key")
        if kind == "events" and not (_is_number(self.clip_seconds) and self.clip_seconds > 0):
            raise LabelError("labels of kind 'events' need clip_seconds > 0 (the target length)")
        if self.default is not None and not _is_int(self.default):
            raise LabelError(f"labels.default must be an int, got {self.default!r}")

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def resolved(self) -> bool:
        """True once the class list (if any) is known."""
        return self.classes is not None or self.classes_file is None

    def class_index(self, value: Any, task: str | None = None) -> int:
        """Index of ``value`` in ``classes`` (no ``default`` fallback)."""
        index = self.__dict__.get("_index")
        if index is None:
            raise LabelError(f"{_where(task)}classes of labels not loaded (classes_file={self.classes_file!r})")
        try:
            return index[value]
        except (KeyError, TypeError):
            raise LabelError(
                f"{_where(task)}json key {self.field!r}: unknown label {value!r} (not among {len(index)} classes)"
            ) from None

    def _get(self, obj: Any, task: str | None) -> Any:
        if self.field is None:
            return obj
        try:
            return obj[self.field]
        except (KeyError, TypeError, IndexError):
            raise LabelError(f"{_where(task)}json has no key {self.field!r}: {_short(obj)}") from None

    def encode(self, json_obj: Any, task: str | None = None) -> Any:
        """The target of one clip-level json: an int, a multi-hot list, a transcript or a list of captions."""
        kind = self.kind
        if kind in ("events", "notes"):
            raise LabelError(f"{_where(task)}labels of kind {kind!r} are frame targets: use frame_targets()")
        value = self._get(json_obj, task)
        if kind == "class":
            if self.default is not None and self.__dict__.get("_index") is not None:
                return self.__dict__["_index"].get(value, self.default)
            return self.class_index(value, task)
        if kind == "index":
            if not _is_int(value) or value < 0 or (self.num_classes is not None and value >= self.num_classes):
                raise LabelError(
                    f"{_where(task)}json key {self.field!r}: {value!r} is not a class index in [0, {self.num_classes})"
                )
            return value
        if kind == "binary_map":
            if self.zero_value is not None:
                return 0 if value == self.zero_value else 1
            try:
                out = int(value)
            except (TypeError, ValueError):
                out = -1
            if out not in (0, 1):
                raise LabelError(f"{_where(task)}json key {self.field!r}: {value!r} is not 0/1")
            return out
        if kind == "multilabel":
            if not isinstance(value, str):
                raise LabelError(f"{_where(task)}json key {self.field!r}: {value!r} is not a string")
            hot = [0.0] * len(self.classes or ())
            for name in value.split(self.separator):
                hot[self.class_index(name, task)] = 1.0
            return hot
        if kind == "text":
            if not isinstance(value, str):
                raise LabelError(f"{_where(task)}json key {self.field!r}: {value!r} is not a string")
            return value
        if kind == "captions":
            if isinstance(value, Mapping):
                return [str(c) for c in value.values()]
            if isinstance(value, list):
                return [str(c) for c in value]
            raise LabelError(f"{_where(task)}captions must be a dict or list, got {_short(value)}")
        raise LabelError(f"{_where(task)}labels of kind {kind!r} cannot be encoded")  # unreachable

    def check(self, json_obj: Any, task: str | None = None) -> None:
        """Raise :class:`LabelError` unless ``json_obj`` gives a target: what :meth:`encode` (clip kinds) or
        :meth:`frame_targets` (``events``/``notes``: every item's keys, times and classes) would refuse."""
        if self.kind in ("events", "notes"):
            self._frame_items(json_obj, task)
        else:
            self.encode(json_obj, task)

    def _frame_items(self, json_obj: Any, task: str | None) -> list[tuple[float, float, list[int]]]:
        """``(start, end, class indices)`` of every event or note of one json (``events`` may join classes)."""
        if self.classes is None:
            raise LabelError(f"{_where(task)}classes of labels not loaded (classes_file={self.classes_file!r})")
        if not isinstance(json_obj, list):
            raise LabelError(f"{_where(task)}expected a list of {self.kind}, got {_short(json_obj)}")
        items = []
        for item in json_obj:
            try:
                start, end, label = item[self.start_key], item[self.end_key], item[self.field]
            except (KeyError, TypeError, IndexError):
                raise LabelError(
                    f"{_where(task)}each of the {self.kind} needs keys {self.start_key!r}, {self.end_key!r}, "
                    f"{self.field!r}: {_short(item)}"
                ) from None
            if not (_is_number(start) and _is_number(end)):
                raise LabelError(f"{_where(task)}{self.kind} times must be numbers (seconds): {_short(item)}")
            names = label.split(self.separator) if self.separator and isinstance(label, str) else [label]
            items.append((start, end, [self.class_index(name, task) for name in names]))
        return items

    def frame_targets(
        self, json_obj: Any, hop_ms: float, n_frames: int | None = None, task: str | None = None
    ) -> np.ndarray:
        """Frame targets ``[num_classes, T]`` (float32) as X-ARES builds them.

        A class is 1 on frames ``[ceil(start / hop), ceil(end / hop))`` with hop in seconds. ``events``:
        ``T = ceil(clip_seconds / hop)`` and a label may list several classes joined by ``separator``;
        ``notes``: ``T = ceil(max(end) / hop)``. With ``n_frames`` the target is then trimmed or
        zero-padded on the right to ``n_frames`` (as X-ARES's trainer does to the embedding length).
        """
        if self.kind not in ("events", "notes"):
            raise LabelError(f"{_where(task)}labels of kind {self.kind!r} have no frame targets")
        if not _is_number(hop_ms) or hop_ms <= 0:
            raise LabelError(f"{_where(task)}hop_ms must be > 0, got {hop_ms!r}")
        items = self._frame_items(json_obj, task)
        if self.kind == "events":
            width = _sec_to_frames(self.clip_seconds, hop_ms)
        else:
            width = _sec_to_frames(max(end for _, end, _ in items), hop_ms) if items else 0
        target = np.zeros((len(self.classes), width), dtype=np.float32)
        for start, end, indices in items:
            target[indices, _sec_to_frames(start, hop_ms) : _sec_to_frames(end, hop_ms)] = 1.0
        return target if n_frames is None else _pad_or_trim(target, n_frames)

    def with_classes_from(self, base_dir: str | Path) -> LabelSpec:
        """This spec with ``classes`` read from ``classes_file`` (relative to ``base_dir``), if not yet known."""
        if self.classes is not None or self.classes_file is None:
            return self
        path = Path(self.classes_file)
        if not path.is_absolute():
            path = Path(base_dir) / path
        try:
            classes = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LabelError(f"cannot read classes_file {str(path)!r}: {exc}") from None
        if not isinstance(classes, list):
            raise LabelError(f"classes_file {str(path)!r} must hold a JSON list")
        return dataclasses.replace(self, classes=tuple(classes), num_classes=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; fields at their default are left out."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name != "kind":
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSpec:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise LabelError(f"unknown labels field(s) {unknown}")
        kwargs = dict(data)
        if kwargs.get("classes") is not None:
            kwargs["classes"] = tuple(kwargs["classes"])
        return cls(**kwargs)


def _where(task: str | None) -> str:
    return f"task {task!r}: " if task else ""


def _short(obj: Any, limit: int = 120) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Fields that do not change a task's raw score and are therefore left out of ``fingerprint()``.
NOT_SCORE_RELEVANT = frozenset(
    {
        "formal_name",
        "private",
        "disabled",
        "eval_weight",
        "do_knn",
        "domain",
        "licence",
        "citation",
        "description",
        "data_dir",
        "encoded_tar_name_of_split",
    }
)


# written beside to_dict() by `xbench describe --json`; from_dict drops it
DERIVED_KEY = "fingerprint"


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """One benchmark task, X-ARES 0.1.3 field names where X-ARES has them (``TaskConfig`` in ``xares/task.py``).

    Differences from X-ARES: label processing is the declarative ``labels``; criterion options live in
    ``criterion_args`` (MAESTRO's ``pos_weight``); ``metric_args`` holds only task constants (the harness
    adds the encoder's ``hop_size_in_ms``); k-fold tasks have all three split names ``None``.
    ``audio_tar_name_of_split`` maps split name (or fold id) → shard glob; left empty it is computed as
    X-ARES does (``f"{split}*.tar"``, k-fold ``f"wds-audio-fold-{k}-*.tar"``); its keys are the distinct
    split names, so val=test tasks have two (Subway broadcast one). ``dataclasses.replace`` keeps the
    mappings: pass ``{}`` for them when changing split names or folds, to have them recomputed.
    """

    name: str
    formal_name: str = ""
    domain: str
    description: str = ""
    private: bool = False
    disabled: bool = False
    task_type: str = "clip"
    labels: LabelSpec
    output_dim: int | None = None
    eval_weight: float = 0
    train_split: str | None = "train"
    valid_split: str | None = "valid"
    test_split: str | None = "test"
    k_fold_splits: tuple[int | str, ...] | None = None
    audio_tar_name_of_split: dict[Any, str] = field(default_factory=dict)
    encoded_tar_name_of_split: dict[Any, str] = field(default_factory=dict)
    zenodo_id: str | None = None
    checksums: dict[str, str] = field(default_factory=dict)
    data_dir: str | None = None
    batch_size_encode: int = 16
    crop_length: float | None = None
    save_encoded_per_batches: int = 2000
    criterion: str = "CrossEntropyLoss"
    criterion_args: dict[str, Any] = field(default_factory=dict)
    batch_size_train: int = 32
    batch_size_valid: int | None = None
    learning_rate: float = 1e-3
    epochs: int = 10
    valid_every: int = 1
    metric: str = "accuracy"
    metric_args: dict[str, Any] = field(default_factory=dict)
    metric_bounds: tuple[float, float] | None = None
    higher_is_better: bool | None = None
    do_knn: bool = True
    pretrained_dependencies: tuple[str, ...] | None = None
    seed: int = 42
    version: int = 1
    licence: str = ""
    citation: str = ""

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise TaskConfigError(f"task {name!r}: field 'name': must match {_NAME_RE.pattern}")

        def bad(fld: str, msg: str) -> TaskConfigError:
            return _err(name, fld, msg)

        def put(fld: str, value: Any) -> None:
            object.__setattr__(self, fld, value)

        if not isinstance(self.formal_name, str):
            raise bad("formal_name", "must be a string")
        if not self.formal_name:
            put("formal_name", name)
        for fld in ("private", "disabled", "do_knn"):
            if not isinstance(getattr(self, fld), bool):
                raise bad(fld, f"must be a bool, got {getattr(self, fld)!r}")
        if self.task_type not in TASK_TYPES:
            raise bad("task_type", f"{self.task_type!r} is not one of {tuple(TASK_TYPES)}")
        if self.domain not in DOMAINS:
            raise bad("domain", f"{self.domain!r} is not one of {DOMAINS}")
        if not _is_number(self.eval_weight) or self.eval_weight < 0:
            raise bad("eval_weight", f"must be a number >= 0, got {self.eval_weight!r}")

        for fld in ("batch_size_encode", "save_encoded_per_batches", "batch_size_train", "epochs", "valid_every"):
            value = getattr(self, fld)
            if not _is_int(value) or value < 1:
                raise bad(fld, f"must be a positive int, got {value!r}")
        if self.batch_size_valid is None:
            put("batch_size_valid", self.batch_size_train)
        elif not _is_int(self.batch_size_valid) or self.batch_size_valid < 1:
            raise bad("batch_size_valid", f"must be a positive int or None, got {self.batch_size_valid!r}")
        if not _is_number(self.learning_rate) or self.learning_rate <= 0:
            raise bad("learning_rate", f"must be > 0, got {self.learning_rate!r}")
        if self.crop_length is not None and (not _is_number(self.crop_length) or self.crop_length <= 0):
            raise bad("crop_length", f"must be None or seconds > 0, got {self.crop_length!r}")
        if not _is_int(self.seed):
            raise bad("seed", f"must be an int, got {self.seed!r}")
        if not _is_int(self.version) or self.version < 1:
            raise bad("version", f"must be an int >= 1, got {self.version!r}")

        self._check_splits(bad, put)
        self._check_outputs(bad, put)

        if self.zenodo_id is not None:
            zid = str(self.zenodo_id) if _is_int(self.zenodo_id) else self.zenodo_id
            if not isinstance(zid, str) or not zid.isdigit():
                raise bad("zenodo_id", f"must be a Zenodo record number, got {self.zenodo_id!r}")
            put("zenodo_id", zid)
        if self.pretrained_dependencies is not None:
            deps = self.pretrained_dependencies
            if isinstance(deps, str) or not all(isinstance(d, str) and d for d in deps):
                raise bad("pretrained_dependencies", f"must be a list of names, got {deps!r}")
            put("pretrained_dependencies", tuple(deps))
        for fld in ("licence", "citation", "description"):
            if not isinstance(getattr(self, fld), str):
                raise bad(fld, "must be a string")
        if not isinstance(self.checksums, Mapping):
            raise bad("checksums", "must be a mapping file name -> 'md5:<hex>'")
        for fname, digest in self.checksums.items():
            if not isinstance(fname, str) or not fname or not isinstance(digest, str) or not _CHECKSUM_RE.match(digest):
                raise bad("checksums", f"{fname!r}: {digest!r} is not 'md5:<32 hex>' or 'sha256:<64 hex>'")
        put("checksums", dict(self.checksums))
        if self.data_dir is not None:
            if not isinstance(self.data_dir, (str, Path)) or not str(self.data_dir):
                raise bad("data_dir", f"must be a folder path, got {self.data_dir!r}")
            put("data_dir", str(self.data_dir))

    def _check_splits(self, bad: Any, put: Any) -> None:
        kfold = self.k_fold_splits
        if kfold is not None:
            if isinstance(kfold, (str, bytes)) or not isinstance(kfold, Iterable):
                raise bad("k_fold_splits", f"must be a list of fold ids, got {kfold!r}")
            kfold = tuple(kfold)
            if len(kfold) < 2 or len(set(map(str, kfold))) != len(kfold):
                raise bad("k_fold_splits", f"needs >= 2 distinct fold ids, got {list(kfold)}")
            if not all(_is_int(k) or (isinstance(k, str) and k) for k in kfold):
                raise bad("k_fold_splits", f"fold ids must be ints or strings, got {list(kfold)}")
            put("k_fold_splits", kfold)
            # X-ARES's XaresTask sets the split names to None in k-fold mode
            put("train_split", None)
            put("valid_split", None)
            put("test_split", None)
            units: list[Any] = list(kfold)
            audio_default = {k: f"wds-audio-fold-{k}-*.tar" for k in kfold}
            encoded_default = {k: f"wds-encoded-fold-{k}-*.tar" for k in kfold}
        else:
            for fld in ("train_split", "valid_split", "test_split"):
                value = getattr(self, fld)
                if not isinstance(value, str) or not value or "/" in value or "\\" in value:
                    raise bad(fld, f"must be a split name (a shard-name prefix), got {value!r}")
            units = list(dict.fromkeys((self.train_split, self.valid_split, self.test_split)))
            audio_default = {s: f"{s}*.tar" for s in units}
            encoded_default = {s: f"wds-encoded-{s}*.tar" for s in units}
        for fld, default in (
            ("audio_tar_name_of_split", audio_default),
            ("encoded_tar_name_of_split", encoded_default),
        ):
            given = getattr(self, fld)
            if not isinstance(given, Mapping):
                raise bad(fld, "must be a mapping split-or-fold id -> shard glob")
            if not given:
                put(fld, default)
                continue
            keys = {str(k): k for k in given}
            missing = [u for u in units if str(u) not in keys]
            extra = sorted(set(keys) - {str(u) for u in units})
            if missing or extra:
                raise bad(fld, f"keys must be exactly {units}; missing {missing}, unexpected {extra}")
            mapping = {u: given[keys[str(u)]] for u in units}
            for unit, pattern in mapping.items():
                if not _shard_pattern_ok(pattern):
                    raise bad(fld, f"{unit!r}: {pattern!r} is not a relative shard file name or glob ending in .tar")
            put(fld, mapping)

    def _check_outputs(self, bad: Any, put: Any) -> None:
        labels = self.labels
        if isinstance(labels, Mapping):
            try:
                labels = LabelSpec.from_dict(labels)
            except (LabelError, TypeError) as exc:
                raise bad("labels", str(exc)) from None
            put("labels", labels)
        if not isinstance(labels, LabelSpec):
            raise bad("labels", f"must be a LabelSpec, got {type(labels).__name__}")
        type_info = TASK_TYPES[self.task_type]
        if labels.kind not in type_info.label_kinds:
            raise bad("labels", f"kind {labels.kind!r} does not fit task_type {self.task_type!r}")
        out = self.output_dim
        if out is None:
            if type_info.needs_output_dim:
                raise bad("output_dim", f"a {self.task_type} task needs output_dim (number of classes)")
        elif not _is_int(out) or out < 1:
            raise bad("output_dim", f"must be a positive int, got {out!r}")
        if labels.num_classes is not None and out is not None and labels.num_classes != out:
            raise bad("labels", f"{labels.num_classes} classes but output_dim={out}")
        if labels.kind == "index" and labels.num_classes is None and out is not None:
            put("labels", dataclasses.replace(labels, num_classes=out))

        if self.metric not in METRICS:
            raise bad("metric", f"{self.metric!r} is not one of {sorted(METRICS)}")
        bounds, higher = METRICS[self.metric].normalisation(self.metric_bounds, self.higher_is_better)
        if bounds is None:
            raise bad("metric_bounds", f"metric {self.metric!r} has no default bounds; declare (lo, hi)")
        try:
            lo, hi = bounds
        except (TypeError, ValueError):
            raise bad("metric_bounds", f"must be (lo, hi), got {bounds!r}") from None
        if not (_is_number(lo) and _is_number(hi) and lo < hi):
            raise bad("metric_bounds", f"must be finite numbers with lo < hi, got {bounds!r}")
        put("metric_bounds", (float(lo), float(hi)))
        if not isinstance(higher, bool):
            raise bad("higher_is_better", f"must be a bool, got {higher!r}")
        put("higher_is_better", higher)

        if not isinstance(self.criterion, str) or not _IDENT_RE.match(self.criterion):
            raise bad(
                "criterion", f"must be a loss class name (torch.nn or AudioTextContrastiveLoss), got {self.criterion!r}"
            )
        for fld in ("criterion_args", "metric_args"):
            value = getattr(self, fld)
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise bad(fld, "must be a mapping with string keys")
            if not _json_safe(dict(value)):
                raise bad(fld, "values must be JSON-serialisable")
            put(fld, dict(value))

    # -- views -----------------------------------------------------------------------------------

    @property
    def is_kfold(self) -> bool:
        """True for cross-validation tasks."""
        return self.k_fold_splits is not None

    @property
    def valid_is_test(self) -> bool:
        """True when model selection uses the test data (k-fold, or valid split == test split)."""
        return self.is_kfold or self.valid_split == self.test_split

    def splits(self) -> list[tuple[Any, str]]:
        """Evaluation units with their audio shard globs.

        Single-split tasks: ``[("train", glob), ("valid", glob), ("test", glob)]`` (``valid`` carries the
        test glob for X-ARES's val=test tasks); k-fold tasks: ``[(fold_id, glob), ...]``.
        """
        g = self.audio_tar_name_of_split
        if self.k_fold_splits is not None:
            return [(k, g[k]) for k in self.k_fold_splits]
        return [("train", g[self.train_split]), ("valid", g[self.valid_split]), ("test", g[self.test_split])]

    def encode_label(self, json_obj: Any) -> Any:
        """The clip-level target of one json (see :meth:`LabelSpec.encode`)."""
        return self.labels.encode(json_obj, task=self.name)

    def frame_targets(self, json_obj: Any, hop_ms: float, n_frames: int | None = None) -> np.ndarray:
        """Frame targets of one json (see :meth:`LabelSpec.frame_targets`)."""
        return self.labels.frame_targets(json_obj, hop_ms, n_frames, task=self.name)

    def normalised_score(self, raw: float) -> float:
        """``raw`` mapped to [0, 1] (1 best) with ``metric_bounds`` and ``higher_is_better``; clamped."""
        from xbench.scoring.scores import normalise

        lo, hi = self.metric_bounds  # type: ignore[misc]
        return normalise(raw, lo, hi, bool(self.higher_is_better))

    def fingerprint(self) -> str:
        """sha256 (hex) over every score-relevant field and ``version``; keys caches."""
        data = {k: v for k, v in self.to_dict().items() if k not in NOT_SCORE_RELEVANT}
        labels = dict(data["labels"])
        labels.pop("classes_file", None)  # the resolved classes count, not where they came from
        data["labels"] = labels
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    # -- serialisation ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (mapping keys become strings); :meth:`from_dict` inverts it."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, LabelSpec):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = {str(k): v for k, v in value.items()}
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskConfig:
        """Build from a :meth:`to_dict` dump (or a hand-written JSON declaration).

        A ``fingerprint`` key (``xbench describe --json`` adds one) is derived, so it is ignored.
        """
        if not isinstance(data, Mapping):
            raise TaskConfigError(f"a task declaration must be a JSON object, got {type(data).__name__}")
        name = data.get("name", "?")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {DERIVED_KEY})
        if unknown:
            raise _err(str(name), unknown[0], f"unknown field(s) {unknown}")
        kwargs = {k: v for k, v in data.items() if k != DERIVED_KEY}
        labels = kwargs.get("labels")
        if isinstance(labels, Mapping):
            try:
                kwargs["labels"] = LabelSpec.from_dict(labels)
            except (LabelError, TypeError) as exc:
                raise _err(str(name), "labels", str(exc)) from None
        for fld in ("k_fold_splits", "pretrained_dependencies", "metric_bounds"):
            if isinstance(kwargs.get(fld), list):
                kwargs[fld] = tuple(kwargs[fld])
        absent = [
            f.name
            for f in dataclasses.fields(cls)
            if f.init and f.name not in kwargs and f.default is MISSING and f.default_factory is MISSING
        ]
        if absent:
            also = f", as are {', '.join(map(repr, absent[1:]))}" if absent[1:] else ""
            raise _err(str(name), absent[0], f"required but missing{also}")
        return cls(**kwargs)


def _shard_pattern_ok(pattern: Any) -> bool:
    """A shard file name or glob inside the task's data folder: no folders, ends in ``.tar``."""
    if not isinstance(pattern, str) or not pattern.endswith(".tar") or len(pattern) <= 4:
        return False
    if "/" in pattern or "\\" in pattern or pattern.startswith("~"):
        return False
    return pattern.count("{") == pattern.count("}")
