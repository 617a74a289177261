"""Free Music Archive (small) genre classification (X-ARES ``freemusicarchive_genre_task.py``)."""

from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="freemusicarchive",
    formal_name="Free Music Archive Small",
    domain="music",
    labels=LabelSpec(
        "class",
        "genre",
        classes=("Hip-Hop", "Pop", "Folk", "Experimental", "Rock", "International", "Electronic", "Instrumental"),
    ),
    output_dim=8,
    train_split="fma_small_train",
    valid_split="fma_small_valid",
    test_split="fma_small_test",
    zenodo_id="14725056",
    crop_length=10,
    epochs=3,
    eval_weight=800,
    description="Eight balanced top-level genres of 30 s tracks, cut into 10 s crops.",
    licence="CC BY 4.0 (metadata); audio under the artists' Creative Commons licences",
    citation="Defferrard et al., FMA: a dataset for music analysis, ISMIR 2017",
)
