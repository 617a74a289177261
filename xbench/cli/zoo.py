"""``xbench zoo ls``: the encoders registered under the ``xbench.encoders`` entry-point group, with their cards."""

from __future__ import annotations

import argparse
from typing import Any

from xbench.cli.common import add_json, print_json


def register(subparsers: Any) -> None:
    """Add ``zoo`` (``ls``)."""
    zoo = subparsers.add_parser("zoo", help="the encoder zoo")
    sub = zoo.add_subparsers(dest="zoo_command", required=True)
    ls = sub.add_parser("ls", help="list registered encoders (entry-point group xbench.encoders)")
    add_json(ls, "print the cards as JSON")
    ls.set_defaults(func=_ls)


def _ls(args: argparse.Namespace) -> int:
    from xbench.encoder.contract import zoo_entry_points
    from xbench.encoders.registry import all_cards

    cards = all_cards()
    rows = []
    for name, ep in sorted(zoo_entry_points().items()):
        card = cards.get(name)
        row = {"name": name, "factory": ep.value}
        if card is not None:
            row.update(card.to_dict())
        rows.append(row)
    if args.json:
        print_json(rows)
        return 0
    print(f"{'name':30s} {'family':12s} {'sr':>6s} {'hop ms':>7s} {'dim':>5s} {'params':>12s}  extra")
    for row in rows:
        params = "" if row.get("parameters") is None else f"{row['parameters']:,}"
        print(
            f"{row['name']:30s} {row.get('family', '-'):12s} {row.get('sampling_rate', ''):>6} "
            f"{row.get('hop_size_in_ms', ''):>7} {row.get('output_dim', ''):>5} {params:>12s}  {row.get('extra') or ''}"
        )
    return 0
