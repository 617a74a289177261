"""Clotho audio-text retrieval (X-ARES ``clotho_task.py``; note the split swap)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="clotho",
    formal_name="Clotho",
    domain="sound",
    task_type="contrastive",
    labels=LabelSpec("captions"),  # one (embedding, caption) pair per caption, in dict order
    output_dim=None,  # X-ARES leaves it unset: the probe's joint space is 1024-d
    # X-ARES trains on development, selects on evaluation and tests on validation
    train_split="clotho_development",
    valid_split="clotho_evaluation",
    test_split="clotho_validation",
    zenodo_id="14856454",
    crop_length=30,
    save_encoded_per_batches=500,
    criterion="AudioTextContrastiveLoss",
    batch_size_train=128,
    epochs=20,
    metric="recallatk_r1",
    do_knn=False,
    pretrained_dependencies=["bert-base-uncased:tokenizer"],
    eval_weight=1045,
    description="Audio-to-text and text-to-audio retrieval with 5 captions per clip; mean R@1 of both directions.",
    licence="Tampere University licence (captions); audio from Freesound under CC licences",
    citation="Drossos, Lipping, Virtanen, Clotho: an audio captioning dataset, ICASSP 2020",
)
