"""Pretraining recipes: one JSON file per recipe, its stages, and how ``--config`` and command-line options change it.

A recipe names its ``family`` (``dasheng``, ``beats``, ``captionstew``) and holds the sections that
family reads (``model``, ``objective``, ``tokenizer``, ...), plus the common ones: ``train`` (fields
of :class:`~xbench.encoders.training.TrainSettings`), ``data`` (:class:`DataSettings`), ``steps``,
``checkpoint_every``, ``keep_checkpoints``, ``log_every``. The built-in recipes are the JSON files in
``recipes/`` beside this module (``RECIPE`` on the command line is one of their names or a path to
such a file); ``--config FILE`` (JSON or YAML) is merged on top, section by section, so it can change
one field. An unknown section or field is an error naming it.

A family turns a recipe into :class:`Stage` s (one for Dasheng and CaptionStew; tokenizer and
encoder stages per iteration for BEATs): what to build, the loss, how many steps and how to write
the family's official checkpoint layout.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from torch import nn

from xbench.encoders.pretraining.stream import Source
from xbench.encoders.training import ModuleLoss, TrainSettings

FAMILIES = {
    "dasheng": "xbench.encoders.dasheng.pretrain.recipe",
    "beats": "xbench.encoders.beats.pretrain.recipe",
    "captionstew": "xbench.encoders.captionstew.pretrain.recipe",
}
COMMON_SECTIONS = (
    "family",
    "description",
    "train",
    "data",
    "steps",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
)
# Settings that only change how a run is recorded, not what it computes: a resumed run may change them.
RECORDING_ONLY = ("description", "checkpoint_every", "keep_checkpoints", "log_every")


class RecipeError(ValueError):
    """A recipe, ``--config`` file or override is unknown or malformed; the message names it."""


@dataclass(frozen=True)
class DataSettings:
    """How clips become batches: clips per process per micro-batch, crop length, shuffle buffer, source weights."""

    batch_size: int = 8
    crop_seconds: float = 2.0
    shuffle_buffer: int = 256
    sample_rate: int = 16000
    weights: Mapping[str, float] | None = None  # source name -> mixing weight (default 1 each)


@dataclass(frozen=True)
class EncoderFile:
    """The X-ARES wrapper that loads a stage's checkpoint: ``module:cls`` called with ``checkpoint=<dir>/<relpath>``."""

    module: str
    cls: str
    relpath: str


@dataclass(frozen=True)
class BuildContext:
    """What a stage's ``build`` may use: the run's folder (earlier stages' outputs), this stage's folder, the data."""

    out: Path
    stage_dir: Path
    sources: list[Source]
    rank: int = 0


@dataclass
class Stage:
    """One training run of a recipe (its own folder, checkpoints and log).

    ``build(context)`` makes the training module (e.g. loading a teacher from an earlier stage's folder);
    ``loss(module, batch, generator)`` returns the loss (and metrics); ``save(model, folder)`` writes the
    family's official layout into ``folder``; ``encoder`` says which zoo wrapper loads it, if any.
    """

    name: str
    steps: int
    settings: TrainSettings
    build: Callable[[BuildContext], nn.Module]
    loss: ModuleLoss
    save: Callable[[nn.Module, Path], None]
    encoder: EncoderFile | None = None


@dataclass(frozen=True)
class Recipe:
    """A resolved recipe: its name and the merged configuration."""

    name: str
    config: dict[str, Any]

    @property
    def family(self) -> str:
        return str(self.config["family"])

    def section(self, name: str) -> dict[str, Any]:
        """A family section (``{}`` when absent)."""
        return dict(self.config.get(name) or {})

    @property
    def train(self) -> TrainSettings:
        return build_dataclass(TrainSettings, self.section("train"), "train")

    @property
    def data(self) -> DataSettings:
        return build_dataclass(DataSettings, self.section("data"), "data")

    @property
    def steps(self) -> int:
        return int(self.config["steps"])

    def stages(self) -> list[Stage]:
        """The family's stages for this recipe."""
        return importlib.import_module(FAMILIES[self.family]).stages(self)

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint must agree on to be resumed by this recipe (all but :data:`RECORDING_ONLY`)."""
        return {"recipe": self.name, **{k: v for k, v in self.config.items() if k not in RECORDING_ONLY}}


def build_dataclass(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """``cls(**values)``, with an unknown field or a bad value reported as one :class:`RecipeError` line."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise RecipeError(f"recipe section {where!r}: unknown field {unknown[0]!r} (known: {', '.join(sorted(names))})")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"recipe section {where!r}: {exc}") from exc


def builtin_recipes() -> list[str]:
    """Names of the recipes that ship with xbench."""
    folder = resources.files("xbench.encoders.pretraining.recipes")
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RecipeError(f"{path}: cannot be read ({exc.strerror})") from exc
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError's parse errors
        raise RecipeError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping of recipe sections, got {type(data).__name__}")
    return data


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_recipe(
    recipe: str, config: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Recipe:
    """Resolve a built-in name or recipe file, then ``config`` and ``overrides`` (nested dicts) on top."""
    path = Path(recipe).expanduser()
    if recipe in builtin_recipes():
        folder = resources.files("xbench.encoders.pretraining.recipes")
        data = json.loads(folder.joinpath(f"{recipe}.json").read_text())
        name = recipe
    elif path.suffix in (".json", ".yaml", ".yml") or path.is_file():
        data, name = _read(path), path.stem
    else:
        raise RecipeError(f"unknown recipe {recipe!r}; built-in recipes: {', '.join(builtin_recipes())}, or a file")
    if config is not None:
        data = merge(data, _read(Path(config).expanduser()))
    data = merge(data, overrides or {})
    family = data.get("family")
    if family not in FAMILIES:
        raise RecipeError(f"recipe {name!r}: family {family!r} is not one of {', '.join(FAMILIES)}")
    module = importlib.import_module(FAMILIES[family])
    allowed = set(COMMON_SECTIONS) | set(module.SECTIONS)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RecipeError(f"recipe {name!r}: unknown section {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
    for key in ("steps", "checkpoint_every"):
        if not isinstance(data.get(key), int) or data[key] < 1:
            raise RecipeError(f"recipe {name!r}: {key} must be a positive integer, got {data.get(key)!r}")
    out = Recipe(name, data)
    build_dataclass(TrainSettings, out.section("train"), "train")  # report a bad field now, not mid-run
    build_dataclass(DataSettings, out.section("data"), "data")
    return out
