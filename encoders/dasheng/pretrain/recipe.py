"""The Dasheng family for ``xbench pretrain``: one MAE stage over seeded crops (see :mod:`.mae`).

Recipe sections: ``model`` (fields of :class:`~xbench.encoders.dasheng.model.DashengConfig`) and
``objective`` (fields of :class:`~xbench.encoders.dasheng.pretrain.mae.MAEConfig`: decoder width,
depth and heads, mask ratio, group size, patch-normalised targets). Each clip's mask is drawn from its
own seed; padding beyond a short clip's end is left out of the loss. The checkpoint is the Zenodo
``{"model", "config"}`` file ``dasheng.pt`` that :class:`~xbench.encoders.dasheng.encoder.DashengEncoder`
loads.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from xbench.encoders.dasheng.model import DashengConfig
from xbench.encoders.dasheng.pretrain.mae import DashengMAE, MAEConfig, save_encoder_checkpoint
from xbench.encoders.pretraining.recipe import EncoderFile, Recipe, RecipeError, Stage, build_dataclass
from xbench.encoders.pretraining.stream import CropBatch
from xbench.encoders.training import RowRandom, module_device

SECTIONS = ("model", "objective")
CHECKPOINT_FILE = "dasheng.pt"


def mae_batch_loss(module: nn.Module, batch: CropBatch, _generator: torch.Generator) -> torch.Tensor:
    """The MAE loss of a batch of crops, each clip masked from its own seed."""
    device = module_device(module)
    return module(batch.waves.to(device), RowRandom(batch.seeds), lengths=batch.lengths.to(device))[0]


def save(model: nn.Module, folder: Path) -> None:
    """The encoder as ``<folder>/dasheng.pt``."""
    assert isinstance(model, DashengMAE)
    save_encoder_checkpoint(model, folder / CHECKPOINT_FILE)


def stages(recipe: Recipe) -> list[Stage]:
    """One ``mae`` stage."""
    encoder = build_dataclass(DashengConfig, recipe.section("model"), "model")
    objective = build_dataclass(MAEConfig, recipe.section("objective"), "objective")
    tokens = (1 + round(recipe.data.crop_seconds * 16000) // encoder.hop_size) // encoder.patch_stride[1]
    if tokens > encoder.chunk_tokens:
        raise RecipeError(
            f"recipe {recipe.name!r}: crops of {recipe.data.crop_seconds} s give {tokens} time tokens, more than "
            f"the position table's {encoder.chunk_tokens} (model.target_length {encoder.target_length})"
        )
    return [
        Stage(
            name="mae",
            steps=recipe.steps,
            settings=recipe.train,
            build=lambda _context: DashengMAE(encoder, objective),
            loss=mae_batch_loss,
            save=save,
            encoder=EncoderFile("xbench.encoders.dasheng.encoder", "DashengEncoder", CHECKPOINT_FILE),
        )
    ]
