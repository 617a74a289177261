"""CaptionStew pretraining: CLAP-style contrastive audio-text learning (see :mod:`.clap`)."""

from xbench.encoders.captionstew.pretrain.clap import (
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
