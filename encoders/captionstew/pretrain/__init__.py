"""CaptionStew pretraining: CLAP-style contrastive audio-text learning (see :mod:`.clap`)."""

from xbench.encoders.captionstew.pretrain.clap import (
    CLAP_TRAINING,
    ClapConfig,
    ClapModel,
    batch_features,
    build_tokenizer,
    embedding_regulariser,
    info_nce,
    load_clap_checkpoint,
    save_clap_checkpoint,
    text_config,
    train_steps,
)

__all__ = [
    "CLAP_TRAINING",
    "ClapConfig",
    "ClapModel",
    "batch_features",
    "build_tokenizer",
    "embedding_regulariser",
    "info_nce",
    "load_clap_checkpoint",
    "save_clap_checkpoint",
    "text_config",
    "train_steps",
]
