"""The built-in offline suite: audio generated from locally installable packages (TTS voices, SoundFonts).

``xbench suite build offline`` writes X-ARES-format shards and task declarations; see
:mod:`xbench.suites.offline.builder` for the folder convention and :mod:`xbench.suites.offline.sources`
for what each source needs.
"""

from xbench.suites.offline.builder import (
    SUITE,
    SuiteError,
    build_suite,
    default_suite_dir,
    find_suite_tasks_dir,
    suite_tasks,
)
from xbench.suites.offline.cli import add_suite_command

SUITES = (SUITE,)

__all__ = [
    "SUITE",
    "SUITES",
    "SuiteError",
    "add_suite_command",
    "build_suite",
    "default_suite_dir",
    "find_suite_tasks_dir",
    "suite_tasks",
]
