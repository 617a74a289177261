"""The CaptionStew family for ``xbench pretrain``: audio-language pretraining of the Zipformer encoder.

One stage (``alp``): captioning (:mod:`.caption`) and/or contrastive (:mod:`.clap`) objectives on
captions composed from each clip's shard metadata (:mod:`.captions`; a ``caption`` field is used as it
is). Before the first step a WordPiece tokenizer is trained on captions of every training clip (a few
templates per clip) with the ``tokenizers`` library and kept in ``<out>/tokenizer`` (a resumed run
reuses it). Recipe sections: ``model`` (:class:`~xbench.encoders.captionstew.zipformer.ZipformerConfig`
fields), ``decoder`` (:class:`~.caption.CaptionConfig` fields), ``text_encoder`` (BERT sizes for the
contrastive head: ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``,
``max_position_embeddings``), ``objective`` (``caption_weight``, ``contrastive_weight`` and
:class:`~.clap.ClapConfig` fields) and ``tokenizer`` (``vocab_size``, ``min_count``, ``captions_per_clip``).
The checkpoint is an Auden model directory, which
:class:`~xbench.encoders.captionstew.encoder.CaptionStewEncoder` loads.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import BertTokenizer

from xbench.data.shards import iter_samples
from xbench.encoders.captionstew.encoder import fbank
from xbench.encoders.captionstew.pretrain.caption import AudioLanguageModel, CaptionConfig
from xbench.encoders.captionstew.pretrain.captions import caption_from_meta
from xbench.encoders.captionstew.pretrain.clap import ClapConfig, build_tokenizer, save_clap_checkpoint, text_config
from xbench.encoders.captionstew.zipformer import ZipformerConfig
from xbench.encoders.pretraining.recipe import BuildContext, EncoderFile, Recipe, RecipeError, Stage, build_dataclass
from xbench.encoders.pretraining.stream import CropBatch, Source
from xbench.encoders.training import RowRandom, mix_seed, module_device

SECTIONS = ("model", "decoder", "text_encoder", "objective", "tokenizer")
TOKENIZER_DIR = "tokenizer"
_CAPTION_SALT = 0xCA97
_TEXT_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings")


def clip_caption(meta: Any, seed: int) -> str:
    """The caption of a clip drawn from its seed (the same on every process)."""
    return caption_from_meta(meta, random.Random(mix_seed(seed, _CAPTION_SALT)))


def training_captions(sources: list[Source], per_clip: int, seed: int) -> list[str]:
    """``per_clip`` captions of every clip of ``sources`` (its json only), for training the tokenizer."""
    captions = []
    samples = (sample for source in sources for shard in source.shards for sample in iter_samples(shard))
    for index, sample in enumerate(samples):
        if "json" in sample.members:
            meta = json.loads(sample.members["json"])
            captions += [caption_from_meta(meta, random.Random(mix_seed(seed, index, j))) for j in range(per_clip)]
    return captions


def tokenizer_for(context: BuildContext, settings: dict[str, Any], seed: int) -> BertTokenizer:
    """The run's tokenizer: read from ``<stage>/tokenizer`` when there, else trained on the captions and saved."""
    folder = context.stage_dir / TOKENIZER_DIR
    if (folder / "tokenizer_config.json").is_file():
        return BertTokenizer.from_pretrained(str(folder))
    captions = training_captions(context.sources, int(settings.get("captions_per_clip", 4)), seed)
    tokenizer = build_tokenizer(captions, int(settings.get("min_count", 1)), int(settings.get("vocab_size", 1000)))
    if context.rank == 0:
        from xbench.encoders.pretraining.checkpoint import write_folder

        write_folder(folder, lambda tmp: tokenizer.save_pretrained(str(tmp)))
    return tokenizer


def batch_loss(module: nn.Module, batch: CropBatch, _generator: torch.Generator) -> tuple[torch.Tensor, Any]:
    """The audio-language loss of a batch of crops and their captions."""
    device = module_device(module)
    captions = [clip_caption(meta, seed) for meta, seed in zip(batch.metas, batch.seeds.tolist(), strict=True)]
    features = fbank(batch.waves.to(device))
    lengths = ((batch.lengths + 80) // 160).clamp(max=features.shape[1]).to(device)
    return module(features, lengths, captions, RowRandom(batch.seeds))


def save(model: nn.Module, folder: Path) -> None:
    assert isinstance(model, AudioLanguageModel)
    save_clap_checkpoint(model, folder)


def stages(recipe: Recipe) -> list[Stage]:
    """One ``alp`` (audio-language pretraining) stage."""
    audio = build_dataclass(ZipformerConfig, recipe.section("model"), "model")
    caption = build_dataclass(CaptionConfig, recipe.section("decoder"), "decoder")
    objective = recipe.section("objective")
    weights = {k: float(objective.pop(k, d)) for k, d in (("caption_weight", 1.0), ("contrastive_weight", 0.0))}
    clap = build_dataclass(ClapConfig, objective, "objective")
    text = recipe.section("text_encoder")
    bad = sorted(set(text) - set(_TEXT_KEYS))
    if bad:
        raise RecipeError(f"recipe section 'text_encoder': unknown field {bad[0]!r} (known: {', '.join(_TEXT_KEYS)})")
    tokenizer_settings = recipe.section("tokenizer")
    seed = recipe.train.seed

    def build(context: BuildContext) -> nn.Module:
        tokenizer = tokenizer_for(context, tokenizer_settings, seed)
        bert = text_config(len(tokenizer.get_vocab()), **text) if weights["contrastive_weight"] > 0 else None
        return AudioLanguageModel(audio, tokenizer, caption, bert, clap, **weights)

    encoder = EncoderFile("xbench.encoders.captionstew.encoder", "CaptionStewEncoder", ".")
    return [Stage("alp", recipe.steps, recipe.train, build, batch_loss, save, encoder)]
