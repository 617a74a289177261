"""DESED sound event detection, frame level (X-ARES ``desed_task.py``; val=test)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="desed",
    formal_name="DESED",
    domain="sound",
    task_type="frame",
    labels=LabelSpec(
        "events",
        "label",
        classes=(
            "Cat",
            "Speech",
            "Running_water",
            "Dishes",
            "Electric_shaver_toothbrush",
            "Vacuum_cleaner",
            "Blender",
            "Alarm_bell_ringing",
            "Dog",
            "Frying",
        ),
        start_key="onset",
        end_key="offset",
        separator=",",
        clip_seconds=10.0,
    ),
    output_dim=10,
    train_split="wds-audio-train",
    valid_split="wds-audio-eval",  # model selection on the test data, as in X-ARES
    test_split="wds-audio-eval",
    zenodo_id="14808180",
    criterion="BCEWithLogitsLoss",
    metric="segmentf1_macro",
    metric_args={"segment_length_in_s": 1.0},  # the harness adds the encoder's hop_size_in_ms
    do_knn=False,
    eval_weight=1153,
    description="Ten domestic sound event classes on 10 s clips; macro segment-F1 over 1 s segments.",
    licence="mixed: CC licences of the Freesound and AudioSet-derived sources (see DESED)",
    citation="Turpault et al., Sound event detection in domestic environments with weakly labeled data and "
    "soundscape synthesis, DCASE 2019 Workshop",
)
