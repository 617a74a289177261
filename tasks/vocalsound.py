"""VocalSound non-speech vocalisations, 6 classes (X-ARES ``vocalsound_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="vocalsound",
    formal_name="VocalSound",
    domain="speech",
    # X-ARES maps an unknown label to -1 (``dict.get(label, -1)``)
    labels=LabelSpec(
        "class", "label", classes=("laughter", "sigh", "throatclearing", "cough", "sneeze", "sniff"), default=-1
    ),
    output_dim=6,
    # X-ARES keeps the default split names: shards train*.tar, valid*.tar, test*.tar
    train_split="train",
    valid_split="valid",
    test_split="test",
    zenodo_id="14722710",
    eval_weight=2000,
    description="Laughter, sighs, coughs, throat clearing, sneezes and sniffs.",
    licence="CC BY-SA 4.0",
    citation="Gong, Yu, Glass, VocalSound: a dataset for improving human vocal sounds recognition, ICASSP 2022",
)
