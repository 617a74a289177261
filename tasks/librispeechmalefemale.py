"""LibriSpeech speaker gender (X-ARES ``librispeech_male_female_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="librispeechmalefemale",
    formal_name="LibriSpeech-MF",
    domain="speech",
    labels=LabelSpec("binary_map", "gender", zero_value="M"),  # "M" -> 0, anything else -> 1
    output_dim=2,
    train_split="train-clean-100",
    valid_split="dev-clean",
    test_split="test-clean",
    zenodo_id="14716252",  # the same record as librispeech
    crop_length=5,
    eval_weight=2620,
    description="Speaker gender of LibriSpeech utterances, cut into 5 s crops.",
    licence="CC BY 4.0",
    citation="Panayotov et al., LibriSpeech: an ASR corpus based on public domain audio books, ICASSP 2015",
)
