"""LibriCount speaker counting, 0-10 speakers, 5 folds (X-ARES ``libricount_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="libricount",
    formal_name="LibriCount",
    domain="speech",
    labels=LabelSpec("index", "num_speakers"),  # the json holds the count 0..10
    output_dim=11,
    k_fold_splits=list(range(5)),
    audio_tar_name_of_split={k: f"libricount_fold{k:02d}.tar" for k in range(5)},
    encoded_tar_name_of_split={k: f"libricount-wds-encoded-fold-{k}-*.tar" for k in range(5)},
    zenodo_id="14722478",
    batch_size_train=64,
    eval_weight=1144,
    description="Number of concurrent speakers (0 to 10) in 5 s LibriSpeech mixtures.",
    licence="CC BY 4.0",
    citation="Stöter et al., CountNet: estimating the number of concurrent speakers using supervised learning, "
    "IEEE/ACM TASLP 2019",
)
