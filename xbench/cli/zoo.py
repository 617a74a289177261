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


def _checksum(card: Any) -> str:
    """The card's sha256 (of its first package file), else the one recorded when its file was first downloaded
    (marked), else ``-``."""
    from xbench.encoders.weights import recorded_sha256, weights_dir

    if card is not None and card.package_weights:
        return card.package_weights[0][1]
    if card is None or not card.weights_file:
        return "-"
    if card.weights_sha256:
        return card.weights_sha256
    recorded = recorded_sha256(weights_dir() / card.name / card.weights_file)
    return f"{recorded} (recorded)" if recorded else "-"


def _ls(args: argparse.Namespace) -> int:
    from xbench.encoder.contract import zoo_entry_points
    from xbench.encoders.registry import all_cards, family_names

    cards = all_cards()
    rows = []
    for name, ep in sorted(zoo_entry_points().items()):
        card = cards.get(name)
        row = {"name": name, "factory": ep.value}
        if card is not None:
            row.update(card.to_dict())
        row["checksum"] = _checksum(card)
        if card is not None and card.package_weights:  # files inside an installed package: the first, and how many
            more = len(card.package_weights) - 1
            row["weights_file"] = card.package_weights[0][0].rsplit("/", 1)[-1] + (f" (+{more})" if more else "")
        row["url"] = (card.weights_url or (f"hf:{card.weights_hub}" if card.weights_hub else "")) if card else ""
        rows.append(row)
    if args.json:
        print_json(rows)
        return 0
    print(
        f"{'name':30s} {'family':12s} {'sr':>6s} {'hop ms':>7s} {'dim':>5s} {'params':>14s}  {'extra':11s} "
        f"{'weight file':26s} {'sha256':16s}  url"
    )
    for row in rows:
        params = "" if row.get("parameters") is None else f"{row['parameters']:,}"
        checksum = row["checksum"] if row["checksum"] == "-" else row["checksum"][:12] + "…"
        checksum += " (recorded)" if row["checksum"].endswith("(recorded)") else ""
        print(
            f"{row['name']:30s} {row.get('family', '-'):12s} {row.get('sampling_rate', ''):>6} "
            f"{row.get('hop_size_in_ms', ''):>7} {row.get('output_dim', ''):>5} {params:>14s}  "
            f"{row.get('extra') or '':11s} {row.get('weights_file') or '-':26s} {checksum:16s}  {row['url'] or '-'}"
        )
    print(
        f"families (--encoder FAMILY --weights CHECKPOINT, shape from the file): {', '.join(family_names())}; "
        "any transformers audio model: --encoder hf:ORG/NAME[@REVISION] or hf:/folder; --json for every field"
    )
    return 0
