"""ESC-50 environmental sound classification, 5 folds (X-ARES ``esc50_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="esc50",
    formal_name="ESC-50",
    domain="sound",
    labels=LabelSpec("index", "label"),  # the json holds the class index
    output_dim=50,
    k_fold_splits=[1, 2, 3, 4, 5],
    audio_tar_name_of_split={k: f"wds-audio-fold-{k}-*.tar" for k in range(1, 6)},
    encoded_tar_name_of_split={k: f"wds-encoded-fold-{k}-*.tar" for k in range(1, 6)},
    zenodo_id="14614287",
    eval_weight=400,
    description="50 classes of 5 s environmental recordings; accuracy averaged over the 5 official folds.",
    licence="CC BY-NC 3.0",
    citation="Piczak, ESC: dataset for environmental sound classification, ACM Multimedia 2015",
)
