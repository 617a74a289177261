"""SoundFont rendering with ``tinysoundfont`` (PyPI, no system library) at 16 kHz.

A synthesiser keeps voices and channel state between clips, so before each clip every sound is cut and
a short silence is rendered and dropped: a clip then depends only on its own notes, not on what was
rendered before it (checked by the byte-identical rebuild test).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xbench.suites.offline.audio import SAMPLE_RATE

#: NSynth's eleven instrument families -> two General MIDI programs each (0-based program numbers).
FAMILY_PROGRAMS: dict[str, tuple[int, int]] = {
    "bass": (32, 33),
    "brass": (56, 57),
    "flute": (73, 75),
    "guitar": (24, 25),
    "keyboard": (0, 4),
    "mallet": (11, 12),
    "organ": (16, 19),
    "reed": (65, 71),
    "string": (40, 42),
    "synth_lead": (80, 81),
    "vocal": (52, 53),
}
FAMILIES: tuple[str, ...] = tuple(FAMILY_PROGRAMS)


@dataclass(frozen=True)
class Note:
    """One note: GM ``program``, MIDI ``pitch``, ``velocity``, onset and offset in seconds."""

    program: int
    pitch: int
    velocity: int
    start: float
    end: float


class SoundFontRenderer:
    """Renders lists of :class:`Note` from one SoundFont file to mono float32 at 16 kHz."""

    def __init__(self, path: str | Path) -> None:
        import tinysoundfont

        self.path = Path(path)
        self.synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
        self.sfid = self.synth.sfload(str(self.path))

    def render(self, notes: list[Note], seconds: float) -> np.ndarray:
        """A ``seconds``-long clip of ``notes`` (each on its own channel, so programs can mix)."""
        synth = self.synth
        synth.sounds_off()
        synth.generate(2048)  # let cut voices die out: no state leaks into this clip
        total = int(round(seconds * SAMPLE_RATE))
        events: list[tuple[int, int, int]] = []  # (sample, 0 off / 1 on, note index)
        for i, note in enumerate(notes):
            events.append((int(round(note.start * SAMPLE_RATE)), 1, i))
            events.append((min(int(round(note.end * SAMPLE_RATE)), total), 0, i))
        events.sort()
        channels = {}
        for i, note in enumerate(notes):
            channel = i % 16 if i % 16 != 9 else 15  # channel 9 (10th) is the drum kit in GM
            channels[i] = channel
            synth.program_select(channel, self.sfid, 0, note.program)
        out, pos = [], 0
        for sample, on, i in events:
            if sample > pos:
                out.append(np.frombuffer(synth.generate(sample - pos), dtype=np.float32))
                pos = sample
            note = notes[i]
            if on:
                synth.noteon(channels[i], note.pitch, note.velocity)
            else:
                synth.noteoff(channels[i], note.pitch)
        if total > pos:
            out.append(np.frombuffer(synth.generate(total - pos), dtype=np.float32))
        stereo = np.concatenate(out) if out else np.zeros(2 * total, np.float32)
        return stereo.reshape(-1, 2).mean(axis=1).astype(np.float32)
