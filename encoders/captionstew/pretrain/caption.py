"""CaptionStew's captioning objective: a small transformer decoder that writes the caption from the audio frames.

As the paper (after CapPa) and Auden's ``audio_caption`` model: the Zipformer frames pass a linear
bridge (``enc_dec_proj``) into the cross-attention memory of a post-norm transformer decoder (GELU,
no biases, sinusoidal positions, output tied to the token embeddings); the loss is cross-entropy
with label smoothing 0.1 over the caption's tokens. Each clip is decoded in one of two modes, drawn
from the clip's own seed with probability ``parallel_fraction`` for the second: *autoregressive*
(teacher forcing: the input is ``[CLS]`` + tokens, a causal mask) or *parallel* (every input token
is ``[MASK]`` and there is no causal mask, so each token must come from the audio alone). The
paper's mixing ratio is not published; CapPa's 0.75 is the default here.

:class:`AudioLanguageModel` holds the audio encoder, the captioning head and, when
``contrastive_weight`` > 0, the CLAP head of :class:`~.clap.ClapModel`; its loss is the weighted sum.
Per clip, the token losses are averaged, then clips are averaged, so the loss does not depend on how
a batch is split over processes. Vocabulary: BERT's special tokens and a WordPiece vocabulary trained
on the captions (:func:`~.clap.build_tokenizer`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertTokenizer

from xbench.encoders import training
from xbench.encoders.captionstew.pretrain.clap import ClapConfig, ClapModel
from xbench.encoders.captionstew.zipformer import ZipformerConfig, ZipformerLayer, make_pad_mask

_MODE_SALT = 0xCA9


@dataclass(frozen=True)
class CaptionConfig:
    """Decoder size and captioning loss settings (defaults: Auden's captioning decoder, CapPa's mixing ratio)."""

    decoder_dim: int = 768
    decoder_layers: int = 6
    decoder_heads: int = 8
    decoder_ffn: int = 3072
    max_tokens: int = 128
    label_smoothing: float = 0.1
    parallel_fraction: float = 0.75
    dropout: float = 0.1


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """``[length, dim]`` sinusoidal position table (sines in the first half, cosines in the second)."""
    half = dim // 2
    rates = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(1, half - 1))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * rates[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TextDecoder(nn.Module):
    """Token embeddings + sinusoidal positions + post-norm decoder layers with cross-attention; tied output."""

    def __init__(self, vocab: int, cfg: CaptionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(vocab, cfg.decoder_dim)
        nn.init.normal_(self.embed_tokens.weight, std=cfg.decoder_dim**-0.5)
        self.register_buffer("positions", sinusoids(cfg.max_tokens + 1, cfg.decoder_dim), persistent=False)
        layer = nn.TransformerDecoderLayer(
            cfg.decoder_dim,
            cfg.decoder_heads,
            cfg.decoder_ffn,
            cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=False,
            bias=False,
        )
        self.layers = nn.TransformerDecoder(layer, cfg.decoder_layers)

    def forward(
        self,
        tokens: torch.Tensor,
        memory: torch.Tensor,
        memory_padding: torch.Tensor | None,
        token_padding: torch.Tensor,
        causal_rows: torch.Tensor,
    ) -> torch.Tensor:
        """Logits ``[B, T, vocab]``; rows with ``causal_rows`` True attend to earlier tokens only."""
        t = tokens.shape[1]
        x = self.embed_tokens(tokens) * self.cfg.decoder_dim**0.5 + self.positions[:t]
        future = torch.ones(t, t, dtype=torch.bool, device=tokens.device).triu(1)
        blocked = (future[None] & causal_rows[:, None, None]).repeat_interleave(self.cfg.decoder_heads, dim=0)
        out = self.layers(
            x, memory, tgt_mask=blocked, tgt_key_padding_mask=token_padding, memory_key_padding_mask=memory_padding
        )
        return out @ self.embed_tokens.weight.T


def caption_batch(
    tokenizer: BertTokenizer, captions: Sequence[str], max_tokens: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(inputs, targets, target padding)``: ``[CLS] t1 .. tn`` -> ``t1 .. tn [SEP]``, padded with ``[PAD]``."""
    enc = tokenizer(list(captions), add_special_tokens=False, truncation=True, max_length=max_tokens)["input_ids"]
    width = max(len(ids) for ids in enc) + 1
    pad, bos, eos = tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id
    inputs = torch.full((len(enc), width), pad, dtype=torch.long)
    targets = torch.full((len(enc), width), pad, dtype=torch.long)
    for row, ids in enumerate(enc):
        inputs[row, : len(ids) + 1] = torch.tensor([bos, *ids])
        targets[row, : len(ids) + 1] = torch.tensor([*ids, eos])
    return inputs, targets, targets == pad


class AudioLanguageModel(ClapModel):
    """Zipformer audio encoder + captioning decoder (+ the CLAP head when ``contrastive_weight`` > 0)."""

    def __init__(
        self,
        audio_config: ZipformerConfig,
        tokenizer: BertTokenizer,
        caption: CaptionConfig | None = None,
        text_encoder_config: BertConfig | None = None,
        clap: ClapConfig | None = None,
        contrastive_weight: float = 0.0,
        caption_weight: float = 1.0,
    ) -> None:
        super().__init__(audio_config, text_encoder_config if contrastive_weight > 0 else None, tokenizer, clap)
        self.caption_config = caption or CaptionConfig()
        self.contrastive_weight, self.caption_weight = contrastive_weight, caption_weight
        self.enc_dec_proj = nn.Linear(self.audio_encoder.output_dim, self.caption_config.decoder_dim)
        self.text_decoder = TextDecoder(len(tokenizer.get_vocab()), self.caption_config)
        for module in self.audio_encoder.modules():  # kept for checkpoint keys only: no gradient ever reaches it
            if isinstance(module, ZipformerLayer):
                module.bypass_scale.requires_grad_(False)

    def caption_loss(
        self,
        frames: torch.Tensor,
        frame_lengths: torch.Tensor,
        captions: Sequence[str],
        generator: training.RandomSource = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Captioning loss of encoder frames; each clip decoded autoregressively or in parallel (see the module)."""
        cfg = self.caption_config
        device = frames.device
        inputs, targets, padding = (t.to(device) for t in caption_batch(self.tokenizer, captions, cfg.max_tokens))
        parallel = training.uniform((len(captions),), _mode_random(generator)).to(device) < cfg.parallel_fraction
        inputs = torch.where(parallel[:, None], torch.full_like(inputs, self.tokenizer.mask_token_id), inputs)
        memory = self.enc_dec_proj(frames)
        memory_padding = make_pad_mask(frame_lengths, memory.shape[1])
        logits = self.text_decoder(inputs, memory, memory_padding, padding, ~parallel)
        ce = F.cross_entropy(
            logits.transpose(1, 2).float(), targets, label_smoothing=cfg.label_smoothing, reduction="none"
        )
        real = ~padding
        loss = ((ce * real).sum(1) / real.sum(1).clamp_min(1)).mean()
        with torch.no_grad():
            hits = (logits.argmax(-1) == targets) & real
            accuracy = float(hits.sum() / real.sum().clamp_min(1))
        return loss, {"caption_accuracy": accuracy, "parallel_share": float(parallel.float().mean())}

    def objective(
        self, features: torch.Tensor, lengths: torch.Tensor, captions: Sequence[str], generator: training.RandomSource
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted sum of the captioning and (if on) contrastive losses, and metrics."""
        frames, frame_lengths = self.audio_encoder(features, lengths)
        caption, metrics = self.caption_loss(frames, frame_lengths, captions, generator)
        loss = self.caption_weight * caption
        metrics["captioning"] = float(caption.detach())
        if self.contrastive:
            contrastive = self.contrastive_loss(self.pool_frames(frames, frame_lengths), self.encode_text(captions))
            loss = loss + self.contrastive_weight * contrastive
            metrics["contrastive"] = float(contrastive.detach())
        return loss, metrics

    def auden_config(self) -> dict[str, Any]:
        """The model's fields of an Auden ``config.json``: the CLAP ones (if any) plus the captioning head's."""
        return {
            **super().auden_config(),
            "model_type": "clap_caption" if self.contrastive else "audio_caption",
            "caption_config": asdict(self.caption_config),
            "contrastive_weight": self.contrastive_weight,
            "caption_weight": self.caption_weight,
        }

    def head_names(self) -> tuple[str, ...]:
        return (*super().head_names(), "enc_dec_proj", "text_decoder")

    def forward(  # type: ignore[override]
        self, features: torch.Tensor, lengths: torch.Tensor, captions: Sequence[str], generator: Any = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return self.objective(features, lengths, captions, generator)


def _mode_random(generator: training.RandomSource) -> training.RandomSource:
    return generator.child(_MODE_SALT) if isinstance(generator, training.RowRandom) else generator
