"""Private task: key scratching on a car (X-ARES ``key_scratching_task.py``; no public data)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="key_scratching",
    formal_name="Key scratching car",
    domain="sound",
    labels=LabelSpec("class", "tag", classes=("T", "F")),
    output_dim=2,
    train_split="key_scratching_train",
    valid_split="key_scratching_test",  # val=test, as in X-ARES
    test_split="key_scratching_test",
    private=True,
    disabled=True,
    epochs=20,
    eval_weight=5000,
    description="Private: is a key scratching a car (json tag T/F)? Data must be placed locally.",
)
