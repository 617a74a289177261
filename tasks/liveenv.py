"""Private task: 28 live environment classes (X-ARES ``liveenv_task.py``; no public data)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="liveenv",
    domain="sound",
    labels=LabelSpec("class", "soundevent", classes_file="labels/liveenv.json"),
    output_dim=28,
    train_split="liveenv_train",
    valid_split="liveenv_test",  # val=test, as in X-ARES
    test_split="liveenv_test",
    private=True,
    disabled=True,
    epochs=50,
    do_knn=False,
    eval_weight=5000,
    description='Private: live environment sound class; the class list keeps X-ARES\'s "BabySound " '
    "(trailing space). Data must be placed locally.",
)
