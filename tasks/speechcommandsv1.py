"""Speech Commands V1 keyword spotting, 30 words (X-ARES ``speechcommandsv1_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="speechcommandsv1",
    formal_name="Speech Commands V1",
    domain="speech",
    labels=LabelSpec("class", "labels", classes_file="labels/speechcommandsv1.json"),
    output_dim=30,
    train_split="wds-audio-train",
    valid_split="wds-audio-valid",
    test_split="wds-audio-test",
    zenodo_id="14722647",
    batch_size_train=64,
    eval_weight=2000,
    description="One-second spoken words, 30 classes.",
    licence="CC BY 4.0",
    citation="Warden, Speech Commands: a dataset for limited-vocabulary speech recognition, arXiv:1804.03209, 2018",
)
