"""Vocal Imitation Set, 302 reference sounds, 3 folds (X-ARES ``vocalimitations_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="vocalimitations",
    formal_name="Vocal Imitation",
    domain="sound",
    labels=LabelSpec("class", "imitation", classes_file="labels/vocalimitations.json"),
    output_dim=302,
    k_fold_splits=list(range(3)),
    audio_tar_name_of_split={k: f"vocal_imitations_fold{k:02}_0000000.tar" for k in range(3)},
    # "vocalimiations" is X-ARES's spelling
    encoded_tar_name_of_split={k: f"vocalimiations-wds-encoded-fold-{k}-*.tar" for k in range(3)},
    zenodo_id="14862060",
    batch_size_encode=1,  # X-ARES "VocalImiations fix": no batch padding in the embeddings
    epochs=20,
    eval_weight=1867,
    description="Which of 302 reference sounds a vocal imitation imitates; accuracy averaged over 3 folds.",
    licence="CC BY 4.0 (unverified)",
    citation="Kim et al., Vocal Imitation Set: a dataset of vocally imitated sound events using the AudioSet "
    "ontology, DCASE 2018 Workshop",
)
