"""NSynth pitch: the MIDI note of 4 s single notes, 128 classes (ICME 2025 challenge table; not in X-ARES 0.1.3).

The IEEE ICME 2025 Audio Encoder Capability Challenge paper (Zhang et al., Table 1) lists "NSynth-Pitch,
pitches classification, Acc, 128 classes, Track B" beside NSynth-Instruments; X-ARES 0.1.3 never
implemented it. Same Zenodo record and shards as ``nsynthinstument``; the label is the NSynth metadata
field ``pitch``, the MIDI note number 0–127, used directly as the class index (classes 0..127, as the
challenge's 128). Not verified offline: that the X-ARES shards' json keeps NSynth's ``pitch`` field (a
shard without it fails with "json has no key 'pitch'"). ``disabled``: run by name, not by ``--suite all``
(it shares its test notes with ``nsynthinstument`` and is outside X-ARES 0.1.3's weights).
"""

import dataclasses

from xbench.tasks.nsynthinstument import TASK as INSTRUMENTS
from xbench.taskspec.config import LabelSpec

TASK = dataclasses.replace(
    INSTRUMENTS,
    name="nsynth_pitch",
    formal_name="NSynth-Pitch",
    labels=LabelSpec("index", "pitch"),  # MIDI note number = class index
    output_dim=128,
    disabled=True,
    eval_weight=2000,  # the NSynth test set (4096 notes) capped at 2000, as nsynthinstument
    description="MIDI pitch (0-127) of 4 s single notes; accuracy over 128 classes.",
    citation="Engel et al., Neural audio synthesis of musical notes with WaveNet autoencoders, ICML 2017; "
    "Zhang et al., IEEE ICME 2025 Audio Encoder Capability Challenge, Table 1 (NSynth-Pitch, 128 classes)",
)
