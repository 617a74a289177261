"""Hidden-state selection of the transformers encoders (``--layer N|last|mean``) and their identity settings.

``last`` is the model's ``last_hidden_state`` (after the final LayerNorm of pre-norm models); ``N`` is
entry ``N`` of ``hidden_states`` (0 = the input to the first transformer layer, negative indices count
from the end; ``-1`` means ``last``); ``mean`` averages every entry of ``hidden_states`` (the input and
each layer's output: SUPERB's weighted sum at uniform weights).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import torch

LAST, MEAN = "last", "mean"
LAYER_HELP = "a hidden-state index N (0 = the input to the first layer), last or mean"
Layer = int | str


class LayerError(ValueError):
    """A ``--layer`` value the model cannot give (the message names the model's hidden states)."""


def parse_layer(value: int | str | None) -> Layer:
    """``None``, ``-1`` and ``"last"`` -> ``"last"``; ``"mean"``; an int or its text -> that index."""
    if value is None or value == LAST or value == -1:
        return LAST
    if value == MEAN:
        return MEAN
    if isinstance(value, bool):
        raise LayerError(f"layer must be {LAYER_HELP}, got {value!r}")
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise LayerError(f"layer must be {LAYER_HELP}, got {value!r}") from None
    return LAST if index == -1 else index


def check_layer(layer: Layer, states: int, who: str) -> Layer:
    """``layer`` if a model with ``states`` hidden states (layers + 1) has it, else :class:`LayerError`."""
    if isinstance(layer, int) and not -states <= layer < states:
        raise LayerError(f"{who}: layer {layer} does not exist (hidden states 0..{states - 1}; or last, mean)")
    return layer


def only_last(layer: Layer, who: str) -> Layer:
    """``last``, or :class:`LayerError` for a model whose hidden states are not frame sequences."""
    if layer != LAST:
        raise LayerError(f"{who}: only --layer last is available (its intermediate states are not frame sequences)")
    return layer


def select_hidden(call: Callable[[bool], Any], layer: Layer) -> torch.Tensor:
    """The chosen hidden state of ``call(output_hidden_states)``'s model output."""
    if layer == LAST:
        return call(False).last_hidden_state
    states = call(True).hidden_states
    if layer == MEAN:
        return torch.stack(tuple(states)).mean(dim=0)
    return states[layer]


def config_digest(config: Any) -> str:
    """sha256 of a transformers config's (or feature extractor's) settings, paths, versions and dtypes left out."""
    raw = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    blob = json.dumps(_settings(raw), sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


_NOT_SETTINGS = frozenset({"transformers_version", "architectures", "dtype", "torch_dtype", "auto_map"})


def _settings(value: Any) -> Any:
    """``value`` without private (``_name_or_path``, ...) and provenance keys, at every depth."""
    if isinstance(value, dict):
        return {k: _settings(v) for k, v in value.items() if not str(k).startswith("_") and k not in _NOT_SETTINGS}
    return value


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else str(value)
