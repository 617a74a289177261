"""NSynth instrument family, 11 classes (X-ARES ``nsynth_instument_task.py``; name as in X-ARES)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="nsynthinstument",
    formal_name="NSynth-Instruments",
    domain="music",
    labels=LabelSpec(
        "class",
        "instrument_family_str",
        classes=(
            "guitar",
            "bass",
            "organ",
            "keyboard",
            "vocal",
            "string",
            "reed",
            "flute",
            "mallet",
            "brass",
            "synth_lead",
        ),
    ),
    output_dim=11,
    train_split="nsynth_train",
    valid_split="nsynth_valid",
    test_split="nsynth_test",
    zenodo_id="14725174",
    eval_weight=2000,
    description="Instrument family of 4 s single notes.",
    licence="CC BY 4.0",
    citation="Engel et al., Neural audio synthesis of musical notes with WaveNet autoencoders, ICML 2017",
)
