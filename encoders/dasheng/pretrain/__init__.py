"""Dasheng pretraining: masked autoencoding of log-mel patches (see :mod:`.mae`)."""

from xbench.encoders.dasheng.pretrain.mae import (
    MAE_TRAINING,
    DashengMAE,
    MAEConfig,
    MAEDecoder,
    encoder_checkpoint,
    mae_loss,
    random_crop,
    random_masking,
    save_encoder_checkpoint,
    train_steps,
)

__all__ = [
    "MAE_TRAINING",
    "DashengMAE",
    "MAEConfig",
    "MAEDecoder",
    "encoder_checkpoint",
    "mae_loss",
    "random_crop",
    "random_masking",
    "save_encoder_checkpoint",
    "train_steps",
]
