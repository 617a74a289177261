"""GTZAN music genre classification, 10 folds (X-ARES ``gtzan_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="gtzan_genre",
    formal_name="GTZAN Genre",
    domain="music",
    labels=LabelSpec(
        "class",
        "genre",
        classes=("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"),
    ),
    output_dim=10,
    k_fold_splits=list(range(10)),
    audio_tar_name_of_split={k: f"gtzan_fold_{k}_0000000.tar" for k in range(10)},
    encoded_tar_name_of_split={k: f"gtzan-wds-encoded-fold-{k}-*.tar" for k in range(10)},
    zenodo_id="14722472",
    eval_weight=100,
    description="Ten genres of 30 s excerpts; accuracy averaged over 10 folds.",
    licence="no explicit licence (research use)",
    citation="Tzanetakis, Cook, Musical genre classification of audio signals, IEEE Trans. Speech and Audio "
    "Processing 2002",
)
