"""MAESTRO piano note detection, frame level (X-ARES ``maestro_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="maestro",
    formal_name="MAESTRO",
    domain="music",
    task_type="frame",
    # MIDI notes 21..107 -> classes 0..86
    labels=LabelSpec("notes", "note", classes=tuple(range(21, 108)), start_key="start", end_key="end"),
    output_dim=87,
    train_split="maestro_train",
    valid_split="maestro_valid",
    test_split="maestro_test",
    zenodo_id="14858022",
    batch_size_encode=1,  # long samples
    criterion="BCEWithLogitsLoss",
    criterion_args={"pos_weight": 10},  # X-ARES: BCEWithLogitsLoss(pos_weight=torch.tensor(10))
    batch_size_train=1,
    epochs=50,
    metric="segmentf1_micro",
    metric_args={"segment_length_in_s": 0.1},  # the harness adds the encoder's hop_size_in_ms
    do_knn=False,
    eval_weight=65,
    description="Active piano notes per frame; micro segment-F1 over 0.1 s segments.",
    licence="CC BY-NC-SA 4.0",
    citation="Hawthorne et al., Enabling factorized piano music modeling and generation with the MAESTRO dataset, "
    "ICLR 2019",
)
