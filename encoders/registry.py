"""The zoo's cards, collected from each family's ``CARDS`` list; lookup by name."""

from __future__ import annotations

import importlib

from xbench.encoders.card import ZooCard

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
