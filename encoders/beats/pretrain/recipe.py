"""The BEATs / OpenBEATs family for ``xbench pretrain``: the iterative recipe as stages.

Iteration 1 trains the encoder (``iter1``) on targets of the frozen random-projection tokenizer.
Iteration k >= 2 first trains a tokenizer (``iter<k>-tokenizer``) by distilling the iteration k-1
encoder (:mod:`.distill`), then trains a fresh encoder (``iter<k>``) on that tokenizer's codes
(``objective.init_from_previous`` starts it from the iteration k-1 encoder instead). ``iterations``
(``--iterations``) sets k's last value. OpenBEATs' multi-domain mixing is the data stream's
weighted sources (``--data NAME:WEIGHT=...`` or the recipe's ``data.weights``).

Recipe sections: ``model`` (:class:`~xbench.encoders.beats.model.BeatsConfig` fields),
``objective`` (:class:`~xbench.encoders.beats.pretrain.masked.PretrainConfig` fields plus
``init_from_previous``), ``tokenizer`` (``codebook_size``, ``codebook_dim``, ``random_seed`` of the
iteration-1 projection; ``model`` — the student's BeatsConfig fields over the encoder's —,
``estimator_layers``, ``beta``, ``decay``, ``kmeans_iters``, ``steps``, and ``train`` fields over the
recipe's), ``iterations``. Checkpoints: ``beats.pt`` (``{"cfg", "model"}``, what
:class:`~xbench.encoders.beats.encoder.BEATsEncoder` loads) and ``tokenizer.pt`` (Microsoft's
tokenizer layout).
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xbench.encoders.beats.encoder import load_checkpoint
from xbench.encoders.beats.model import BeatsConfig, BeatsModel
from xbench.encoders.beats.pretrain.distill import DistillConfig, TokenizerPretraining
from xbench.encoders.beats.pretrain.masked import BeatsMaskedPretraining, PretrainConfig, encoder_checkpoint
from xbench.encoders.beats.pretrain.tokenizer import (
    BeatsTokenizer,
    RandomProjectionTokenizer,
    load_tokenizer,
    tokenizer_checkpoint,
)
from xbench.encoders.pretraining.checkpoint import save_torch
from xbench.encoders.pretraining.recipe import BuildContext, EncoderFile, Recipe, RecipeError, Stage, build_dataclass
from xbench.encoders.pretraining.stream import CropBatch
from xbench.encoders.training import RowRandom, TrainSettings, module_device

SECTIONS = ("model", "objective", "tokenizer", "iterations")
ENCODER_FILE = "beats.pt"
TOKENIZER_FILE = "tokenizer.pt"
_TOKENIZER_KEYS = {
    "codebook_size",
    "codebook_dim",
    "random_seed",
    "model",
    "estimator_layers",
    "beta",
    "decay",
    "kmeans_iters",
    "steps",
    "train",
}


def batch_loss(module: nn.Module, batch: CropBatch, _generator: torch.Generator) -> tuple[torch.Tensor, Any]:
    """The loss and metrics of a training module (encoder or tokenizer stage) on a batch of crops."""
    device = module_device(module)
    return module(batch.waves.to(device), RowRandom(batch.seeds), lengths=batch.lengths.to(device))


def save_encoder(model: nn.Module, folder: Path) -> None:
    assert isinstance(model, BeatsMaskedPretraining)
    save_torch(encoder_checkpoint(model), folder / ENCODER_FILE)


def save_tokenizer(model: nn.Module, folder: Path) -> None:
    assert isinstance(model, TokenizerPretraining)
    save_torch(tokenizer_checkpoint(model.tokenizer), folder / TOKENIZER_FILE)


def load_encoder(path: Path) -> BeatsModel:
    """The encoder of an earlier stage's ``beats.pt``."""
    if not path.is_file():
        raise RecipeError(f"{path} is missing: the previous iteration has not finished")
    state, cfg = load_checkpoint(path)
    model = BeatsModel(BeatsConfig.from_dict(cfg or {}))
    model.load_reference_state_dict(state)
    return model


def stages(recipe: Recipe) -> list[Stage]:
    """``iter1``, then ``iter<k>-tokenizer`` and ``iter<k>`` for k = 2 .. ``iterations``."""
    encoder_cfg = build_dataclass(BeatsConfig, recipe.section("model"), "model")
    objective = recipe.section("objective")
    init_previous = bool(objective.pop("init_from_previous", False))
    pretrain_cfg = build_dataclass(PretrainConfig, objective, "objective")
    tok = recipe.section("tokenizer")
    unknown = sorted(set(tok) - _TOKENIZER_KEYS)
    if unknown:
        raise RecipeError(f"recipe section 'tokenizer': unknown field {unknown[0]!r}")
    codes, dim = int(tok.get("codebook_size", 1024)), int(tok.get("codebook_dim", 256))
    student_fields = dict(tok.get("model", {}))
    bad = sorted(set(student_fields) - {f.name for f in fields(BeatsConfig)})
    if bad:
        raise RecipeError(f"recipe section 'tokenizer.model': unknown field {bad[0]!r}")
    student_cfg = replace(encoder_cfg, **student_fields)
    quantizer = {k: tok[k] for k in ("beta", "decay", "kmeans_iters") if k in tok}
    distill_cfg = DistillConfig(int(tok.get("estimator_layers", 3)), recipe.train.seed)
    tok_train = {**recipe.section("train"), **tok.get("train", {})}
    tok_settings = build_dataclass(TrainSettings, tok_train, "tokenizer.train")
    iterations = int(recipe.config.get("iterations", 1))
    if iterations < 1:
        raise RecipeError(f"recipe {recipe.name!r}: iterations must be >= 1, got {iterations}")

    def encoder_stage(k: int) -> Stage:
        def build(context: BuildContext) -> nn.Module:
            out = context.out
            if k == 1:
                tokenizer: nn.Module = RandomProjectionTokenizer(
                    encoder_cfg.input_patch_size, dim, codes, int(tok.get("random_seed", 45))
                )
            else:
                tokenizer = load_tokenizer(out / f"iter{k}-tokenizer" / "final" / TOKENIZER_FILE)
            model = BeatsMaskedPretraining(encoder_cfg, tokenizer, pretrain_cfg)
            if k > 1 and init_previous:
                model.encoder.load_state_dict(load_encoder(out / f"iter{k - 1}" / "final" / ENCODER_FILE).state_dict())
            return model

        encoder = EncoderFile("xbench.encoders.beats.encoder", "BEATsEncoder", ENCODER_FILE)
        return Stage(f"iter{k}", recipe.steps, recipe.train, build, batch_loss, save_encoder, encoder)

    def tokenizer_stage(k: int) -> Stage:
        def build(context: BuildContext) -> nn.Module:
            teacher = load_encoder(context.out / f"iter{k - 1}" / "final" / ENCODER_FILE)
            return TokenizerPretraining(BeatsTokenizer(student_cfg, codes, dim, **quantizer), teacher, distill_cfg)

        steps = int(tok.get("steps", recipe.steps))
        return Stage(f"iter{k}-tokenizer", steps, tok_settings, build, batch_loss, save_tokenizer)

    out = [encoder_stage(1)]
    for k in range(2, iterations + 1):
        out += [tokenizer_stage(k), encoder_stage(k)]
    return out
