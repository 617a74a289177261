"""ASVspoof 2015: spoofed vs bona fide speech (X-ARES ``asvspoof_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="asvspoof2015",
    formal_name="ASV2015",
    domain="speech",
    labels=LabelSpec("class", "binary_spoof", classes=("human", "spoof")),
    output_dim=2,
    train_split="asvspoof_train",
    valid_split="asvspoof_valid",
    test_split="asvspoof_eval",
    zenodo_id="14718430",
    batch_size_train=64,
    epochs=5,
    eval_weight=2000,
    description="Detect spoofed (synthetic or converted) speech; X-ARES scores it by accuracy, not EER.",
    licence="ODC-By 1.0 (ASVspoof 2015 database; unverified)",
    citation="Wu et al., ASVspoof 2015: the first automatic speaker verification spoofing and countermeasures "
    "challenge, Interspeech 2015",
)
