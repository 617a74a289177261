"""CaptionStew pretraining: contrastive (:mod:`.clap`) and captioning (:mod:`.caption`) audio-language learning,
captions from metadata (:mod:`.captions`); :mod:`.recipe` is the ``xbench pretrain`` stage."""

from xbench.encoders.captionstew.pretrain.caption import AudioLanguageModel, CaptionConfig, TextDecoder
from xbench.encoders.captionstew.pretrain.captions import caption_from_meta
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
    "AudioLanguageModel",
    "CaptionConfig",
    "TextDecoder",
    "caption_from_meta",
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
