"""Private task: finger snap detection (X-ARES ``finger_snap_task.py``; no public data)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="finger_snap",
    formal_name="Finger snap sound",
    domain="sound",
    labels=LabelSpec("class", "tag", classes=("T", "F")),
    output_dim=2,
    train_split="finger_snap_train",
    valid_split="finger_snap_test",  # val=test, as in X-ARES
    test_split="finger_snap_test",
    private=True,
    disabled=True,
    epochs=20,
    eval_weight=5000,
    description="Private: is there a finger snap (json tag T/F)? Data must be placed locally.",
)
