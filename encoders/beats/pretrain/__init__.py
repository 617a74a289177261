"""BEATs pretraining: tokenizers (:mod:`.tokenizer`), masked token prediction (:mod:`.masked`), tokenizer distillation
(:mod:`.distill`); :mod:`.recipe` turns a recipe into the iterations' stages for ``xbench pretrain``."""

from xbench.encoders.beats.pretrain.distill import DistillConfig, TokenizerPretraining
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
from xbench.encoders.beats.pretrain.tokenizer import (
    BeatsTokenizer,
    NormEMAVectorQuantizer,
    RandomProjectionTokenizer,
    load_tokenizer,
    tokenizer_checkpoint,
)

__all__ = [
    "MASKED_TRAINING",
    "BeatsTokenizer",
    "DistillConfig",
    "NormEMAVectorQuantizer",
    "TokenizerPretraining",
    "load_tokenizer",
    "tokenizer_checkpoint",
    "BeatsMaskedPretraining",
    "BeatsPredictor",
    "PretrainConfig",
    "RandomProjectionTokenizer",
    "encoder_checkpoint",
    "mask_patches",
    "save_encoder_checkpoint",
    "train_steps",
]
