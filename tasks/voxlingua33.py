"""VoxLingua107 subset of 33 languages (X-ARES ``voxlingua33_task.py``; val=test)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="voxlingua33",
    formal_name="VoxLingua33",
    domain="speech",
    labels=LabelSpec("class", "labels", classes_file="labels/voxlingua33.json"),
    output_dim=33,
    train_split="train_subset",
    valid_split="dev",  # model selection on the test data, as in X-ARES
    test_split="dev",
    zenodo_id="14812245",
    crop_length=10,
    batch_size_train=64,
    eval_weight=1609,
    description="Spoken language identification over 33 languages, 10 s crops.",
    licence="CC BY 4.0",
    citation="Valk, Alumäe, VoxLingua107: a dataset for spoken language recognition, IEEE SLT 2021",
)
