"""Music pools rendered from General MIDI SoundFonts: single notes, melodies and instrument mixtures.

Training and validation clips come from the training SoundFonts (FluidR3 and TimGM6mb); the test split
is rendered from a SoundFont never used in training (MuseScore General Lite): a different sample set,
that is, a different recording domain. The PyPI-only variant (TimGM6mb alone) holds out instruments
instead: each family's first GM program is used for training, its second one for the test split.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from xbench.suites.offline.audio import add_noise, item_rng, normalise_peak
from xbench.suites.offline.common import Item, PoolResult
from xbench.suites.offline.soundfont import FAMILIES, FAMILY_PROGRAMS, Note, SoundFontRenderer
from xbench.suites.offline.sources import Sources
from xbench.taskspec.config import LabelSpec, TaskConfig

SEED = "xbench-offline-v1"
TRAIN_FONTS = ("fluidr3", "timgm6mb")
TEST_FONTS = ("musescore",)
PITCHES = tuple(range(48, 73))  # C3..C5, 25 classes
NOTE_SECONDS, MELODY_SECONDS, MIXTURE_SECONDS = 1.0, 4.0, 1.5
PROGRAMS = tuple((family, program) for family in FAMILIES for program in FAMILY_PROGRAMS[family])
LICENCE = "generated at build time; FluidR3_GM MIT, MuseScore General Lite MIT, TimGM6mb GPL-2.0"


_LOADED: dict[str, SoundFontRenderer] = {}


def _renderers(sources: Sources) -> dict[str, SoundFontRenderer]:
    """One renderer per SoundFont, loaded once per process (loading MuseScore's sf3 takes about 2 s)."""
    for path in sources.soundfonts.values():
        if str(path) not in _LOADED:
            _LOADED[str(path)] = SoundFontRenderer(path)
    return {name: _LOADED[str(path)] for name, path in sources.soundfonts.items()}


def _level(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = normalise_peak(x, float(rng.uniform(0.3, 0.9)))
    return add_noise(x, rng, float(rng.uniform(35, 55)))


def _domains(split: str, sources: Sources) -> list[tuple[str, tuple[int, int]]]:
    """(SoundFont, program slots allowed) per domain of ``split``: held-out SoundFont, else held-out programs."""
    if all(f in sources.soundfonts for f in TRAIN_FONTS + TEST_FONTS):
        return [(f, (0, 1)) for f in (TEST_FONTS if split == "test" else TRAIN_FONTS)]
    return [("timgm6mb", (1,) if split == "test" else (0,))]


# -- single notes: instrument family and pitch ------------------------------------------------------------


def build_notes(sources: Sources, small: bool) -> list[Item]:
    """One note per clip: 22 GM programs (11 NSynth families) x MIDI 48-72, velocity 60-120."""
    fonts = _renderers(sources)
    items = []
    # pitches per (program, font): every pitch in train and test (full); a seeded subset otherwise
    per_split = {"train": 3, "valid": 1, "test": 2} if small else {"train": len(PITCHES), "valid": 5, "test": 25}
    for split in ("train", "valid", "test"):
        for font, slots in _domains(split, sources):
            for family, program in PROGRAMS:
                if FAMILY_PROGRAMS[family].index(program) not in slots:
                    continue
                rng = item_rng(SEED, "notes-plan", split, font, program)
                count = per_split[split]
                pitches = PITCHES if count == len(PITCHES) else sorted(rng.choice(PITCHES, count, replace=False))
                for pitch in pitches:
                    key = f"note_{split}_{font}_{program:03d}_{pitch}"
                    rng = item_rng(SEED, key)
                    velocity = int(rng.integers(60, 121))
                    note = Note(program, int(pitch), velocity, 0.02, float(rng.uniform(0.6, 0.85)))
                    audio = _level(fonts[font].render([note], NOTE_SECONDS), rng)
                    meta = {
                        "instrument_family_str": family,
                        "pitch": int(pitch),
                        "program": program,
                        "velocity": velocity,
                        "soundfont": font,
                    }
                    items.append(Item(split, key, audio, meta))
    return items


def declare_notes(pool: PoolResult) -> list[TaskConfig]:
    return [
        _task(
            pool,
            name="offline_instrument",
            formal_name="Offline instrument family (SoundFont)",
            labels=LabelSpec("class", "instrument_family_str", classes=FAMILIES),
            description="NSynth-style instrument family of single notes (11 families, 2 GM programs each); test "
            "notes come from a SoundFont unseen in training.",
        ),
        _task(
            pool,
            name="offline_pitch",
            formal_name="Offline pitch (SoundFont)",
            labels=LabelSpec("class", "pitch", classes=PITCHES),
            description="MIDI pitch (48-72, 25 classes) of single notes; test notes come from a SoundFont unseen in "
            "training.",
        ),
    ]


# -- melodies: frame-level note activity ------------------------------------------------------------------


def _program(family: str, slots: tuple[int, ...], rng: np.random.Generator) -> int:
    return FAMILY_PROGRAMS[family][slots[int(rng.integers(len(slots)))]]


def _melody(rng: np.random.Generator, slots: tuple[int, ...]) -> list[Note]:
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    program = _program(family, slots, rng)
    notes, t, pitch = [], float(rng.uniform(0.0, 0.3)), int(rng.integers(52, 69))
    while t < MELODY_SECONDS - 0.3:
        length = float(rng.choice([0.15, 0.25, 0.35, 0.5, 0.7]))
        end = min(t + length, MELODY_SECONDS - 0.1)
        notes.append(Note(program, pitch, int(rng.integers(70, 121)), round(t, 3), round(end, 3)))
        t = end + (float(rng.uniform(0.05, 0.4)) if rng.random() < 0.3 else 0.0)
        pitch = int(np.clip(pitch + rng.integers(-5, 6), PITCHES[0], PITCHES[-1]))
    return notes


def build_melodies(sources: Sources, small: bool) -> list[Item]:
    """Four-second monophonic melodies (random walks over MIDI 48-72) on a random program."""
    fonts = _renderers(sources)
    counts = {"train": 12, "valid": 4, "test": 12} if small else {"train": 80, "valid": 16, "test": 100}
    items = []
    for split, key, font, slots, rng in _clips("melody", counts, sources):
        notes = _melody(rng, slots)
        audio = _level(fonts[font].render(notes, MELODY_SECONDS), rng)
        meta = [{"start": n.start, "end": n.end, "note": n.pitch} for n in notes]
        items.append(Item(split, key, audio, meta))
    return items


def _clips(
    prefix: str, counts: dict[str, int], sources: Sources
) -> Iterator[tuple[str, str, str, tuple[int, ...], np.random.Generator]]:
    """(split, key, SoundFont, program slots, the clip's generator) for ``counts[split]`` clips per split,
    cycling through the split's domains."""
    for split, count in counts.items():
        domains = _domains(split, sources)
        for i in range(count):
            font, slots = domains[i % len(domains)]
            key = f"{prefix}_{split}_{font}_{i:04d}"
            yield split, key, font, slots, item_rng(SEED, key)


def declare_melodies(pool: PoolResult) -> list[TaskConfig]:
    return [
        _task(
            pool,
            name="offline_melody_notes",
            formal_name="Offline melody notes (SoundFont)",
            task_type="frame",
            labels=LabelSpec("notes", "note", classes=PITCHES, start_key="start", end_key="end"),
            description="Active MIDI note (48-72) per frame in monophonic melodies; micro segment-F1 over 0.1 s "
            "segments; test melodies come from a SoundFont unseen in training.",
            criterion="BCEWithLogitsLoss",
            criterion_args={"pos_weight": 10},  # one active note of 25 (MAESTRO uses 10 too)
            metric="segmentf1_micro",
            metric_args={"segment_length_in_s": 0.1},
            batch_size_train=8,
            epochs=100,  # 10 probe steps per epoch
            do_knn=False,
        )
    ]


# -- mixtures: multi-label instrument families ------------------------------------------------------------


def build_mixtures(sources: Sources, small: bool) -> list[Item]:
    """Two or three notes of different families sounding together; labels are the families present."""
    fonts = _renderers(sources)
    counts = {"train": 40, "valid": 10, "test": 30} if small else {"train": 400, "valid": 60, "test": 240}
    items = []
    for split, key, font, slots, rng in _clips("mix", counts, sources):
        picked = sorted(rng.choice(len(FAMILIES), size=int(rng.integers(2, 4)), replace=False))
        families = [FAMILIES[j] for j in picked]
        notes = []
        for family in families:
            program = _program(family, slots, rng)
            start = float(rng.uniform(0.0, 0.15))
            notes.append(Note(program, int(rng.choice(PITCHES)), int(rng.integers(70, 121)), start, 1.2))
        audio = _level(fonts[font].render(notes, MIXTURE_SECONDS), rng)
        meta = {"instrument_families": ";".join(families), "soundfont": font}
        items.append(Item(split, key, audio, meta))
    return items


def declare_mixtures(pool: PoolResult) -> list[TaskConfig]:
    return [
        _task(
            pool,
            name="offline_instrument_mix",
            formal_name="Offline instrument mixtures (SoundFont)",
            labels=LabelSpec("multilabel", "instrument_families", classes=FAMILIES, separator=";"),
            description="Which of 11 instrument families sound in a mixture of 2-3 notes; macro mAP; test mixtures "
            "come from a SoundFont unseen in training.",
            criterion="BCEWithLogitsLoss",
            metric="mAP",
            do_knn=False,
        )
    ]


def _task(
    pool: PoolResult,
    *,
    name: str,
    formal_name: str,
    labels: LabelSpec,
    description: str,
    task_type: str = "clip",
    **extra: object,
) -> TaskConfig:
    if pool.suffix:
        description += " PyPI-only variant: TimGM6mb alone; the test split holds out each family's second program."
    return TaskConfig(
        name=name + pool.suffix,
        formal_name=formal_name + (" [PyPI]" if pool.suffix else ""),
        domain="music",
        description=description,
        task_type=task_type,
        labels=labels,
        output_dim=labels.num_classes,
        data_dir=f"../data/{pool.name}",
        checksums=pool.checksums,
        batch_size_encode=32,
        eval_weight=float(pool.counts["test"]),
        **({"epochs": 50} | extra),  # type: ignore[arg-type]
        licence=LICENCE,
        citation="xbench offline suite",
    )
