"""RAVDESS emotion recognition, 8 classes, 4 folds (X-ARES ``ravdess_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="ravdess",
    formal_name="RAVDESS",
    domain="speech",
    labels=LabelSpec(
        "class",
        "emotion",
        classes=("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
    ),
    output_dim=8,
    k_fold_splits=list(range(4)),
    audio_tar_name_of_split={k: f"ravdess_fold_{k}_0000000.tar" for k in range(4)},
    encoded_tar_name_of_split={k: f"ravdess-wds-encoded-fold-{k}-*.tar" for k in range(4)},
    zenodo_id="14722524",
    eval_weight=360,
    description="Emotion of acted speech and song; accuracy averaged over 4 folds.",
    licence="CC BY-NC-SA 4.0",
    citation="Livingstone, Russo, The Ryerson Audio-Visual Database of Emotional Speech and Song (RAVDESS), "
    "PLoS ONE 2018",
)
