"""Claiming embed units, so any number of processes sharing a cache never embed a unit twice.

A unit's claim is ``<unit>.claim`` beside its file (a :mod:`xbench.core.claims` lock with owner, host,
pid and heartbeat). :func:`take_units` hands out the units this process holds, one at a time, with
the heartbeat running while the caller embeds; a unit that another live process holds is passed
over for the next one, and once only such units remain the process waits (polling) until each is
committed by its holder, or its claim goes stale (holder killed, or silent for ``stale_after_s``)
and is taken over. Several processes on one host or on many hosts sharing the cache folder thus
split the work without talking to each other; every one returns when all units are committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from xbench.core.atomic_io import clean_orphans
from xbench.core.claims import ClaimSettings, read_claim, try_claim

log = logging.getLogger(__name__)

__all__ = ["ClaimSettings", "claim_path", "take_units"]


class _HasPath(Protocol):
    @property
    def path(self) -> Path: ...


U = TypeVar("U", bound=_HasPath)


def claim_path(unit_path: Path) -> Path:
    """The claim file of the unit stored at ``unit_path``."""
    return unit_path.with_name(unit_path.name + ".claim")


def take_units(
    units: Sequence[U],
    done: Callable[[U], bool],
    settings: ClaimSettings | None = None,
) -> Iterator[U]:
    """Yield each unit of ``units`` not ``done`` that this process claims; the caller commits it before
    asking for the next one. Returns once every unit is ``done`` (by this process or another) or was
    yielded. Closing the iterator early (an error while embedding) releases the claim held.

    Leftover temporary files of killed writers in the units' folders are removed first.
    """
    settings = settings or ClaimSettings()
    for folder in sorted({u.path.parent for u in units}):
        clean_orphans(folder)
    pending = list(units)
    told: set[Path] = set()
    while pending:
        waiting: list[U] = []
        took = False
        for unit in pending:
            if done(unit):
                if claim_path(unit.path).exists() and (left := try_claim(claim_path(unit.path), settings)) is not None:
                    left.release()  # the claim of a holder killed after committing its unit
                continue
            claim = try_claim(claim_path(unit.path), settings, str(unit.path))
            if claim is None:
                waiting.append(unit)
                continue
            with claim.keep_alive():
                if done(unit):  # committed by another process between the check and the claim
                    continue
                took = True
                yield unit
        pending = waiting
        if pending and not took:
            fresh = [u for u in pending if u.path not in told]
            if fresh:
                told.update(u.path for u in fresh)
                owners = sorted({i.describe() for u in fresh if (i := read_claim(claim_path(u.path))) is not None})
                log.info("waiting for %d unit(s) claimed by %s", len(fresh), ", ".join(owners) or "another process")
            time.sleep(settings.poll_s)
