"""Where the offline suite's audio comes from, and which of those sources this machine has.

| source | route | provides |
|---|---|---|
| ``espeak`` | PyPI ``espeakng-loader`` (libespeak-ng and its data in the wheel; no root) | ~100 languages |
| ``flite`` | Debian ``flite`` (the ``flite`` command) | 5 English voices |
| ``festival`` | Debian ``festival`` + ``festvox-*`` voices | English, Italian, Finnish, Czech, Russian |
| ``timgm6mb`` | PyPI ``pretty-midi`` ships ``TimGM6mb.sf2`` (no root) | a small General MIDI SoundFont |
| ``fluidr3`` | Debian ``fluid-soundfont-gm`` | FluidR3_GM.sf2 |
| ``musescore`` | Debian ``musescore-general-soundfont-small`` | MuseScore_General_Lite.sf3 |

SoundFonts are rendered with PyPI ``tinysoundfont`` (no system library). ``$XBENCH_SOUNDFONT_DIR`` may
point at a folder holding ``FluidR3_GM.sf2`` / ``MuseScore_General_Lite.sf3`` instead of the Debian paths.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from xbench.core.atomic_io import sha256_file


@dataclass(frozen=True)
class Voice:
    """One TTS voice: ``engine`` + engine-specific ``name``; ``language`` and ``gender`` ("male"/"female")."""

    engine: str
    name: str
    language: str
    gender: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


#: Festival voices: (scheme voice name, language, gender, text encoding the voice reads).
FESTIVAL_VOICES: dict[str, tuple[str, str, str]] = {
    "kal_diphone": ("en", "male", "latin-1"),
    "ked_diphone": ("en", "male", "latin-1"),
    "cmu_us_slt_arctic_hts": ("en", "female", "latin-1"),
    "lp_diphone": ("it", "female", "latin-1"),
    "pc_diphone": ("it", "male", "latin-1"),
    "suo_fi_lj_diphone": ("fi", "female", "latin-1"),
    "hy_fi_mv_diphone": ("fi", "male", "latin-1"),
    "czech_dita": ("cs", "female", "iso-8859-2"),
    "czech_machac": ("cs", "male", "iso-8859-2"),
    "czech_ph": ("cs", "male", "iso-8859-2"),
    "msu_ru_nsh_clunits": ("ru", "male", "utf-8"),
}

#: Flite's built-in voices and their speakers' genders (all US/Scottish English).
FLITE_VOICES: dict[str, str] = {"kal": "male", "kal16": "male", "awb": "male", "rms": "male", "slt": "female"}

#: The Debian packages that provide each apt-only source (for messages).
APT_PACKAGES: dict[str, str] = {
    "flite": "flite",
    "festival": "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k festvox-itapc16k "
    "festvox-suopuhe-lj festvox-suopuhe-mv festvox-czech-dita festvox-czech-machac festvox-czech-ph festvox-ru",
    "fluidr3": "fluid-soundfont-gm",
    "musescore": "musescore-general-soundfont-small",
}
PIP_PACKAGES: dict[str, str] = {
    "espeak": "espeakng-loader==0.2.4",
    "timgm6mb": "pretty-midi==0.2.11.post0",
    "tinysoundfont": "tinysoundfont==0.3.7 (--no-deps)",
}

_SOUNDFONT_FILES = {"fluidr3": "FluidR3_GM.sf2", "musescore": "MuseScore_General_Lite.sf3"}
_DEBIAN_SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3")


def _module_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def soundfont_path(name: str) -> Path | None:
    """Path of SoundFont ``name`` (``timgm6mb``, ``fluidr3``, ``musescore``), or None when it is not installed."""
    if name == "timgm6mb":
        folder = _module_dir("pretty_midi")
        path = folder / "TimGM6mb.sf2" if folder else None
        return path if path and path.is_file() else None
    filename = _SOUNDFONT_FILES[name]
    dirs = [os.environ["XBENCH_SOUNDFONT_DIR"]] if os.environ.get("XBENCH_SOUNDFONT_DIR") else []
    for folder in (*dirs, *_DEBIAN_SOUNDFONT_DIRS):
        path = Path(folder) / filename
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=1)
def festival_voices() -> tuple[str, ...]:
    """The known festival voices that ``festival`` reports installed (empty without festival)."""
    if shutil.which("festival") is None:
        return ()
    try:
        out = subprocess.run(
            ["festival", "-b", "(print (voice.list))"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    listed = set(out.replace("(", " ").replace(")", " ").split())
    return tuple(v for v in FESTIVAL_VOICES if v in listed)


@lru_cache(maxsize=1)
def flite_voices() -> tuple[str, ...]:
    """Flite's built-in voices (empty without the ``flite`` command)."""
    if shutil.which("flite") is None:
        return ()
    try:
        out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    listed = set(out.split(":", 1)[-1].split())
    return tuple(v for v in FLITE_VOICES if v in listed)


def espeak_available() -> bool:
    """True when ``espeakng-loader`` (its library and data) is importable."""
    return _module_dir("espeakng_loader") is not None


def tinysoundfont_available() -> bool:
    return _module_dir("tinysoundfont") is not None


@dataclass(frozen=True)
class Sources:
    """What this machine offers: TTS engines with their voices, and SoundFont paths."""

    espeak: bool
    flite: tuple[str, ...]
    festival: tuple[str, ...]
    soundfonts: dict[str, Path]

    def has(self, name: str) -> bool:
        if name == "espeak":
            return self.espeak
        if name == "flite":
            return set(self.flite) == set(FLITE_VOICES)
        if name == "festival":
            return set(self.festival) == set(FESTIVAL_VOICES)
        return name in self.soundfonts

    def describe(self) -> dict[str, object]:
        """JSON-safe summary (versions of what was used go into the suite manifest)."""
        return {
            "espeak": self.espeak,
            "flite": list(self.flite),
            "festival": list(self.festival),
            "soundfonts": {k: {"file": p.name, "sha256": sha256_file(p)} for k, p in self.soundfonts.items()},
        }


def detect_sources() -> Sources:
    """Probe the machine for every source (runs ``flite -lv`` and ``festival`` once)."""
    fonts = {}
    if tinysoundfont_available():
        for name in ("timgm6mb", "fluidr3", "musescore"):
            path = soundfont_path(name)
            if path is not None:
                fonts[name] = path
    return Sources(espeak_available(), flite_voices(), festival_voices(), fonts)


def install_hint(missing: list[str]) -> str:
    """How to get the ``missing`` sources."""
    apt = " ".join(APT_PACKAGES[m] for m in missing if m in APT_PACKAGES)
    pip = " ".join(PIP_PACKAGES[m] for m in missing if m in PIP_PACKAGES)
    parts = []
    if apt:
        parts.append(f"apt-get install {apt} (or bash scripts/setup_system.sh, as root)")
    if pip:
        parts.append(f"pip install {pip}")
    return "; ".join(parts)
