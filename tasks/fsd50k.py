"""FSD50K multi-label sound event tagging, 200 classes (X-ARES ``fsd50k_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="fsd50k",
    formal_name="FSD50k",
    domain="sound",
    labels=LabelSpec("multilabel", "soundevent", classes_file="labels/fsd50k.json", separator=";"),
    output_dim=200,
    train_split="fsd50k_train",
    valid_split="fsd50k_validation",
    test_split="fsd50k_eval",
    zenodo_id="14868441",
    crop_length=10,
    criterion="BCEWithLogitsLoss",
    batch_size_train=64,
    metric="mAP",
    do_knn=False,
    eval_weight=2000,
    description="AudioSet-ontology tags of Freesound clips; macro mAP.",
    licence="CC BY 4.0 (dataset); clips under various Creative Commons licences",
    citation="Fonseca et al., FSD50K: an open dataset of human-labeled sound events, IEEE/ACM TASLP 2022",
)
