"""Fluent Speech Commands, 248 phrases (X-ARES ``fluentspeechcommands_kws_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="fluentspeechcommands",
    formal_name="Fluent Speech Commands",
    domain="speech",
    labels=LabelSpec("class", "transcription", classes_file="labels/fluentspeechcommands.json"),
    output_dim=248,
    train_split="fluentspeechcommands_train",
    valid_split="fluentspeechcommands_valid",
    test_split="fluentspeechcommands_test",
    zenodo_id="14722453",
    batch_size_encode=1,  # X-ARES "FSC fix": no batch padding in the embeddings
    eval_weight=2000,
    description="Spoken commands classified by their transcription (248 distinct phrases).",
    licence="Fluent Speech Commands licence (academic, non-commercial)",
    citation="Lugosch et al., Speech model pre-training for end-to-end spoken language understanding, Interspeech 2019",
)
