"""FSDKaggle2018 sound classification, 41 classes (X-ARES ``fsdkaggle2018_task.py``; val=test)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="fsdkaggle2018",
    formal_name="FSD18-Kaggle",
    domain="sound",
    labels=LabelSpec("class", "sound", classes_file="labels/fsdkaggle2018.json"),
    output_dim=41,
    train_split="fsd18_train",
    valid_split="fsd18_test",  # model selection on the test data, as in X-ARES
    test_split="fsd18_test",
    zenodo_id="14725117",
    batch_size_train=64,
    epochs=3,
    do_knn=False,
    eval_weight=1600,
    description="41 general-purpose sound classes from Freesound; X-ARES scores accuracy (the challenge lists mAP).",
    licence="CC BY 4.0 (dataset); clips under various Creative Commons licences",
    citation="Fonseca et al., General-purpose tagging of Freesound audio with AudioSet labels: task description, "
    "dataset, and baseline, DCASE 2018 Workshop",
)
