"""UrbanSound8K, 10 classes, 10 folds (X-ARES ``urbansound8k_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="urbansound8k",
    formal_name="UrbanSound 8k",
    domain="sound",
    labels=LabelSpec(
        "class",
        "soundevent",
        classes=(
            "air_conditioner",
            "car_horn",
            "children_playing",
            "dog_bark",
            "drilling",
            "engine_idling",
            "gun_shot",
            "jackhammer",
            "siren",
            "street_music",
        ),
    ),
    output_dim=10,
    k_fold_splits=list(range(1, 11)),
    audio_tar_name_of_split={k: f"urbansound_fold{k}_0000000.tar" for k in range(1, 11)},
    encoded_tar_name_of_split={k: f"urbansound-wds-encoded-fold-{k}-*.tar" for k in range(1, 11)},
    zenodo_id="14722683",
    eval_weight=873,
    description="Urban sound excerpts up to 4 s; accuracy averaged over the 10 official folds.",
    licence="CC BY-NC 3.0",
    citation="Salamon, Jacoby, Bello, A dataset and taxonomy for urban sound research, ACM Multimedia 2014",
)
