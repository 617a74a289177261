"""Private task: recorded inside or outside a car.

X-ARES ``inside_outside_car_task.py`` (whose function is misnamed ``finger_snap_config``).
"""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="inside_outside_car",
    formal_name="Inside/outside car",
    domain="sound",
    labels=LabelSpec("class", "position", classes=("Inside", "Outside")),
    output_dim=2,
    train_split="inside_outside_car_train",
    valid_split="inside_outside_car_test",  # val=test, as in X-ARES
    test_split="inside_outside_car_test",
    private=True,
    epochs=20,
    eval_weight=5000,
    description="Private: recording position Inside/Outside a car. Data must be placed locally.",
)
