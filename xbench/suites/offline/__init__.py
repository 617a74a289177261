"""The built-in offline suite: audio generated from locally installable packages (TTS voices, SoundFonts).

``xbench suite build offline`` writes X-ARES-format shards and task declarations; see
:mod:`xbench.suites.offline.builder` for the folder convention and :mod:`xbench.suites.offline.sources`
for what each source needs. The suite names are defined here and the builder's names load on first
use, so the command line can list the suites without importing the builder.
"""

from __future__ import annotations

from typing import Any

SUITE = "offline"
SUITES = (SUITE,)

_BUILDER_NAMES = ("SuiteError", "build_suite", "default_suite_dir", "find_suite_tasks_dir", "suite_tasks")

__all__ = ["SUITE", "SUITES", *_BUILDER_NAMES]


def __getattr__(name: str) -> Any:
    if name in _BUILDER_NAMES:
        from xbench.suites.offline import builder

        return getattr(builder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
