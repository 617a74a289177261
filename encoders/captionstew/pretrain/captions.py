"""Captions for clips that come with metadata but no caption: varied templates over the known metadata fields.

CaptionStew trains on captions written in many styles; offline there are none, so a clip's caption is
composed from its shard json, one template drawn per clip from the clip's own seed (so the same clip
gets different wordings in different epochs only through different seeds, and DDP sees the same text).
A ``caption`` / ``captions`` field is used as it is. Known fields (those of the offline suite's pools):
speech (``language``, ``gender``, ``text``), spoken keywords (``labels`` with a ``voice``/``engine``),
single notes (``instrument_family_str``, ``pitch`` as MIDI, ``velocity``), mixtures
(``instrument_families``, ``;``-separated) and melodies (a list of ``{"note", "start", "end"}``);
anything else becomes a plain ``key value`` list.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

LANGUAGES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "pl": "Polish",
    "cs": "Czech",
    "fi": "Finnish",
    "ru": "Russian",
    "nl": "Dutch",
    "sv": "Swedish",
}
_NOTES = ("C", "C sharp", "D", "E flat", "E", "F", "F sharp", "G", "A flat", "A", "B flat", "B")


def note_name(midi: int) -> str:
    """``60`` -> ``"C 4"`` (scientific pitch, sharps and flats spelled out)."""
    return f"{_NOTES[int(midi) % 12]} {int(midi) // 12 - 1}"


def _join(words: Sequence[str]) -> str:
    words = [w.replace("_", " ") for w in words]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _speech(meta: dict[str, Any], rng: random.Random) -> str:
    gender = meta.get("gender")
    who = rng.choice(
        [f"a {gender} voice", f"a {gender} speaker", f"{'a man' if gender == 'male' else 'a woman'}"]
        if gender in ("male", "female")
        else ["a voice", "a speaker", "someone"]
    )
    language = LANGUAGES.get(str(meta.get("language")), str(meta.get("language", "")).strip() or None)
    if "text" in meta:
        said = rng.choice([f'saying "{meta["text"]}"', f"reading the words {meta['text']}", f"who says {meta['text']}"])
    elif "labels" in meta:
        word = str(meta["labels"])
        said = rng.choice([f'saying the word "{word}"', f"speaking the keyword {word}", f"who says {word}"])
    else:
        said = "talking"
    synthetic = rng.choice(["synthetic ", "", "computer generated "]) if meta.get("engine") else ""
    if language is None:
        return rng.choice([f"{synthetic}speech: {who} {said}", f"{who} {said}"])
    return rng.choice(
        [
            f"{who} {said} in {language}",
            f"{synthetic}{language} speech, {who} {said}",
            f"in {language}, {who} {said}",
        ]
    )


def _note(meta: dict[str, Any], rng: random.Random) -> str:
    family = str(meta["instrument_family_str"]).replace("_", " ")
    name = note_name(meta["pitch"]) if "pitch" in meta else None
    velocity = meta.get("velocity")
    how = "" if velocity is None else rng.choice(["softly ", "gently "]) if int(velocity) < 64 else rng.choice(
        ["loudly ", "strongly "]
    )
    if name is None:
        return rng.choice([f"a {family} note", f"one note on a {family}"])
    return rng.choice(
        [
            f"a {family} {how}playing {name}",
            f"one {family} note, {name}, played {how.strip() or 'once'}",
            f"the note {name} {how}on a {family}",
            f"{name} played {how}by a {family}",
        ]
    )


def _mixture(meta: dict[str, Any], rng: random.Random) -> str:
    families = [f for f in str(meta["instrument_families"]).split(";") if f]
    listed = _join(rng.sample(families, len(families)))
    return rng.choice(
        [
            f"a mix of {listed}",
            f"{len(families)} instruments playing together: {listed}",
            f"{listed} sounding at once",
            f"an ensemble of {listed}",
        ]
    )


def _melody(notes: list[dict[str, Any]], rng: random.Random) -> str:
    pitches = [int(n["note"]) for n in notes]
    low, high, first = note_name(min(pitches)), note_name(max(pitches)), note_name(pitches[0])
    return rng.choice(
        [
            f"a melody of {len(pitches)} notes from {low} to {high}",
            f"a short tune starting on {first}, {len(pitches)} notes",
            f"{len(pitches)} notes played one after another, between {low} and {high}",
        ]
    )


def caption_from_meta(meta: Any, rng: random.Random) -> str:
    """One caption for a clip's metadata, its wording drawn with ``rng``."""
    if isinstance(meta, list) and meta and all(isinstance(n, dict) and "note" in n for n in meta):
        return _melody(meta, rng)
    if not isinstance(meta, dict):
        return f"a sound labelled {meta}"
    given = meta.get("captions", meta.get("caption"))
    if given:
        return str(rng.choice(given) if isinstance(given, list) else given)
    if "instrument_family_str" in meta:
        return _note(meta, rng)
    if "instrument_families" in meta:
        return _mixture(meta, rng)
    if {"language", "gender", "text"} & set(meta) or ("labels" in meta and {"voice", "engine"} & set(meta)):
        return _speech(meta, rng)
    simple = [f"{k.replace('_', ' ')} {v}" for k, v in meta.items() if isinstance(v, str | int | float)]
    return "a sound: " + ", ".join(simple) if simple else "a sound"
