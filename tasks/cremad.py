"""CREMA-D emotion recognition, 6 classes (X-ARES ``crema_d_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="cremad",
    formal_name="CREMA-D",
    domain="speech",
    # X-ARES maps an unknown label to -1 (``dict.get(label, -1)``)
    labels=LabelSpec("class", "label", classes=("H", "S", "A", "F", "D", "N"), default=-1),
    output_dim=6,
    train_split="wds-audio-train",
    valid_split="wds-audio-valid",
    test_split="wds-audio-test",
    zenodo_id="14646870",
    eval_weight=1116,
    description="Emotion of acted sentences: happy, sad, anger, fear, disgust, neutral.",
    licence="ODbL 1.0",
    citation="Cao et al., CREMA-D: crowd-sourced emotional multimodal actors dataset, IEEE Trans. Affective "
    "Computing 2014",
)
