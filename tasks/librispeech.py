"""LibriSpeech-100h ASR with a frozen Qwen2.5-0.5B decoder (X-ARES ``librispeech_asr_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="librispeech",
    formal_name="LibriSpeech-100h",
    domain="speech",
    task_type="asr",
    labels=LabelSpec("text", "trans"),
    output_dim=None,  # the probe feeds a language model; no class count
    train_split="train-clean-100",
    valid_split="dev-clean",
    test_split="test-clean",
    zenodo_id="14716252",
    batch_size_train=4,
    metric="WER_inv",  # max(0, 1 - WER), corpus level, lower-cased
    do_knn=False,
    pretrained_dependencies=["qwen2"],  # X-ARES fetches Qwen/Qwen2.5-0.5B
    eval_weight=10000,
    description="Speech recognition on train-clean-100 / test-clean; score is 1 - WER.",
    licence="CC BY 4.0",
    citation="Panayotov et al., LibriSpeech: an ASR corpus based on public domain audio books, ICASSP 2015",
)
