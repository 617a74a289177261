"""Private task: subway broadcast detection (X-ARES ``subway_broadcast_task.py``; train = valid = test)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="subway_broadcast",
    formal_name="Subway broadcast",
    domain="sound",
    labels=LabelSpec("binary_map", "broadcasting"),
    output_dim=2,
    train_split="subway_broadcast",
    valid_split="subway_broadcast",
    test_split="subway_broadcast",
    private=True,
    epochs=20,
    eval_weight=5000,
    description="Private: is a station announcement playing (int(json broadcasting))? Train = valid = test."
    " Data must be placed locally.",
)
