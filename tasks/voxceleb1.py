"""VoxCeleb1 speaker identification, 1251 speakers (X-ARES ``voxceleb1_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="voxceleb1",
    formal_name="VoxCeleb1",
    domain="speech",
    labels=LabelSpec("class", "speakerid", classes_file="labels/voxceleb1.json"),
    output_dim=1251,
    train_split="voxceleb1_train",
    valid_split="voxceleb1_valid",
    test_split="voxceleb1_test",
    zenodo_id="14811963",
    crop_length=6,
    eval_weight=2000,
    description="Closed-set identification of 1251 celebrities, 6 s crops.",
    licence="CC BY 4.0",
    citation="Nagrani, Chung, Zisserman, VoxCeleb: a large-scale speaker identification dataset, Interspeech 2017",
)
