"""The zoo's cards, collected from each family's ``CARDS`` list; lookup by name; building an entry or a
family with a user's checkpoint (:func:`build`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xbench.encoder.contract import EncoderLoadError
from xbench.encoders.card import ZooCard
from xbench.encoders.checkpoints import CheckpointError, accepted, detect

# Each family module exposes CARDS: list[ZooCard]. A family whose optional imports fail still
# lists its cards (cards are plain data; only building the encoder needs the extra).
FAMILY_MODULES = (
    "xbench.encoders.baselines",
    "xbench.encoders.dasheng",
    "xbench.encoders.offline",
    "xbench.encoders.beats",
    "xbench.encoders.captionstew",
    "xbench.encoders.hf",
)


def all_cards() -> dict[str, ZooCard]:
    """Every card of every family, by name; a duplicate name is an error naming both families."""
    cards: dict[str, ZooCard] = {}
    for module_name in FAMILY_MODULES:
        module = importlib.import_module(module_name)
        for card in getattr(module, "CARDS", []):
            if card.name in cards:
                raise ValueError(f"zoo name {card.name!r} declared twice ({cards[card.name].family}, {card.family})")
            cards[card.name] = card
    return cards


def get_card(name: str) -> ZooCard:
    cards = all_cards()
    if name not in cards:
        raise KeyError(f"no zoo card {name!r}; known: {', '.join(sorted(cards))}")
    return cards[name]


# --------------------------------------------------------------------------------------------------
# Building an entry with a user's checkpoint (--weights) or layer (--layer)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """How a family's encoders take a checkpoint: ``factory`` builds the shape the file holds (empty: the
    family has no such class; its cards still take ``--weights``), ``weights_arg`` is the constructor argument."""

    name: str
    factory: str
    weights_arg: str
    layers: bool = False  # the constructor takes layer= (hidden-state selection)


FAMILIES = {
    family.name: family
    for family in (
        Family("dasheng", "xbench.encoders.dasheng.encoder:DashengEncoder", "checkpoint"),
        Family("beats", "xbench.encoders.beats.encoder:BEATsEncoder", "checkpoint"),
        Family("captionstew", "xbench.encoders.captionstew.encoder:CaptionStewEncoder", "checkpoint"),
        Family("hf", "", "model_id_or_path", layers=True),  # a transformers folder of any shape is hf:/path
    )
}


def family_names() -> list[str]:
    """The family names ``--encoder`` accepts with ``--weights`` (the shape comes from the file)."""
    return sorted(name for name, family in FAMILIES.items() if family.factory)


def is_buildable(name: str) -> bool:
    """Whether ``name`` is a zoo card or a family name (see :func:`build`)."""
    return name in all_cards() or name in family_names()


def _import_factory(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def check_card(encoder: Any, card: ZooCard, source: str | Path) -> None:
    """:class:`CheckpointError` unless ``encoder`` (built from ``source``) has its card's dimension and parameters."""
    params = sum(p.numel() for p in encoder.parameters())
    dim = int(encoder.output_dim)
    if dim == card.output_dim and card.parameters in (None, params):
        return
    expected = f"{card.output_dim}-d" + (f" with {card.parameters:,} parameters" if card.parameters else "")
    hint = ""
    if card.family in family_names():
        hint = f"; `--encoder {card.family} --weights {source}` takes the shape from the file"
    raise CheckpointError(
        f"{source}: holds a {dim}-d {card.family} encoder with {params:,} parameters, but zoo entry {card.name} is "
        f"{expected}: refused{hint}"
    )


def build(name: str, weights: str | Path | None = None, layer: int | str | None = None) -> Any:
    """Zoo entry or family ``name`` built with the checkpoint ``weights`` and/or hidden state ``layer``.

    The checkpoint's layout is recognised (:func:`xbench.encoders.checkpoints.detect`) and must be one of
    the family's; a zoo entry's build must match its card's dimension and parameter count (a family name
    takes its shape from the file). Every refusal is one line (:class:`CheckpointError` /
    :class:`~xbench.encoder.contract.EncoderLoadError`).
    """
    cards = all_cards()
    card = cards.get(name)
    family = FAMILIES.get(card.family if card else name)
    if card is None and (family is None or not family.factory):
        raise EncoderLoadError(
            f"{name!r} is not a zoo name or a family; zoo names: {', '.join(sorted(cards))}; families (with "
            f"--weights): {', '.join(family_names())}"
        )
    if weights is not None and family is None:
        raise EncoderLoadError(f"zoo entry {name!r} ({card.family}) has no weights to replace: drop --weights")
    if layer is not None and not (family and family.layers):
        takes = ", ".join(sorted(n for n, c in cards.items() if c.family in FAMILIES and FAMILIES[c.family].layers))
        raise EncoderLoadError(f"--layer applies to hf: models and the transformers zoo entries ({takes}), not {name}")
    if card is None and weights is None:
        entries = ", ".join(sorted(n for n, c in cards.items() if c.family == name))
        raise EncoderLoadError(
            f"family {name!r} takes its shape from a checkpoint: --encoder {name} --weights PATH "
            f"(zoo entries: {entries})"
        )
    factory = _import_factory(card.factory if card else family.factory)
    kwargs: dict[str, Any] = {} if layer is None else {"layer": layer}
    layout = None
    if weights is not None:
        layout = detect(weights)
        if layout.family != family.name:
            raise CheckpointError(
                f"{weights}: a {layout.title} checkpoint of the {layout.family} family, not {family.name}; {name} "
                f"accepts: {accepted(family.name)}"
            )
        kwargs[family.weights_arg] = Path(weights).expanduser()
        if family.name == "hf":
            kwargs["pretrained"] = True
    try:
        encoder = factory(**kwargs)
    except EncoderLoadError:
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        what = f"{layout.title} checkpoint {weights} does not load as {name}" if layout else f"{name} cannot be built"
        raise CheckpointError(f"{what}: {type(exc).__name__}: {text}") from exc
    if card is not None and weights is not None:
        check_card(encoder, card, weights)
    return encoder
