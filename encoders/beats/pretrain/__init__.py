"""BEATs pretraining: random-projection tokenizer (:mod:`.tokenizer`), masked token prediction (:mod:`.masked`)."""

from xbench.encoders.beats.pretrain.masked import (
    MASKED_TRAINING,
    BeatsMaskedPretraining,
    BeatsPredictor,
    PretrainConfig,
    encoder_checkpoint,
    mask_patches,
    save_encoder_checkpoint,
    train_steps,
)
from xbench.encoders.beats.pretrain.tokenizer import RandomProjectionTokenizer

__all__ = [
    "MASKED_TRAINING",
    "BeatsMaskedPretraining",
    "BeatsPredictor",
    "PretrainConfig",
    "RandomProjectionTokenizer",
    "encoder_checkpoint",
    "mask_patches",
    "save_encoder_checkpoint",
    "train_steps",
]
