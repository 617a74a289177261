"""CLAP-style contrastive audio-text pretraining of the Zipformer encoder (CaptionStew / Auden ``clap``).

The recipe of Auden's ``ClapModel``: the Zipformer audio encoder and a BERT text encoder ([CLS]
token, captions truncated to 30 tokens) each followed by a 2-layer ReLU MLP into a shared space
(1024-d by default); the audio embedding is the masked mean of the projected frames; both are
L2-normalised; loss = symmetric InfoNCE at a fixed temperature 0.07, summed over the batch (a->t
plus t->a cross-entropy with identity targets), plus Auden's embedding regulariser
``mean|e| / ||e||`` for each modality.

Differences from the CaptionStew runs, because nothing can be downloaded here: the text encoder is
a BERT built from a ``transformers.BertConfig`` with random initialisation (``bert-base-uncased``
sizes by default; the tests use a tiny one) and its WordPiece vocabulary is built from the training
captions (:func:`build_tokenizer`), not bert-base-uncased's. The optimiser is AdamW (Auden uses
ScaledAdam with the Eden schedule); no SpecAugment, no cross-GPU gathering of embeddings.

:func:`save_clap_checkpoint` writes an Auden CLAP model directory (``config.json`` with
``audio_encoder_config`` / ``text_encoder_config``, ``model.safetensors`` with ``audio_encoder.*``,
``text_encoder.*``, ``audio_proj.*``, ``text_proj.*`` keys, and the tokenizer files), which
:class:`~xbench.encoders.captionstew.encoder.CaptionStewEncoder` loads directly.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, BertTokenizer

from xbench.encoders import training
from xbench.encoders.captionstew.encoder import fbank, load_auden_checkpoint, save_auden_checkpoint
from xbench.encoders.captionstew.zipformer import ZipformerConfig, ZipformerModel, make_pad_mask

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
FEATURE_PAD = math.log(1e-10)  # Auden pads fbank batches with log(1e-10)
ClapBatch = tuple[torch.Tensor | Sequence[torch.Tensor], Sequence[str]]  # (16 kHz waveforms, their captions)


@dataclass(frozen=True)
class ClapConfig:
    """Projection and loss settings (defaults: Auden's ``ClapConfig``)."""

    shared_emb_dim: int = 1024
    temp: float = 0.07
    embed_reg: bool = True
    max_text_tokens: int = 30


def _caption_words(captions: Iterable[str]) -> Counter[str]:
    """Word counts of ``captions`` split by BERT's own normaliser (lower case) and pre-tokenizer."""
    backend = BertTokenizer(vocab={token: i for i, token in enumerate(SPECIAL_TOKENS)}).backend_tokenizer
    counts: Counter[str] = Counter()
    for caption in captions:
        counts.update(w for w, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(caption)))
    return counts


def learn_wordpieces(counts: Counter[str], size: int) -> list[str]:
    """A WordPiece vocabulary of ``size`` pieces (or the alphabet, if larger) learnt from word counts by merges.

    Every character seen is a piece on its own and as a continuation (``##`` marks a piece that
    continues a word), so any word spelt with known characters can be tokenized; then the most
    frequent adjacent pair is merged until the vocabulary has ``size`` pieces or nothing is left to
    merge. Ties go to the alphabetically first pair, so the result depends only on the counts (the
    ``tokenizers`` library's trainer breaks ties in hash order, which differs from run to run).
    """
    words = {w: [w[0], *(f"##{c}" for c in w[1:])] for w in counts if w}
    vocab = {piece for c in {c for w in words for c in w} for piece in (c, f"##{c}")}
    while len(vocab) < size:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, pieces in words.items():
            for pair in zip(pieces, pieces[1:], strict=False):
                pairs[pair] += counts[word]
        if not pairs:
            break
        first, second = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merged = first + second[2:]
        for pieces in words.values():
            i = 0
            while i < len(pieces) - 1:
                if pieces[i] == first and pieces[i + 1] == second:
                    pieces[i : i + 2] = [merged]
                i += 1
        vocab.add(merged)
    return sorted(vocab)


def build_tokenizer(captions: Iterable[str], min_count: int = 1, vocab_size: int | None = None) -> BertTokenizer:
    """A lower-casing BERT tokenizer whose vocabulary is BERT's special tokens plus what the captions hold.

    ``vocab_size=None``: whole words, split with BERT's own normaliser and pre-tokenizer (punctuation
    separate), ordered by frequency then alphabetically; words seen fewer than ``min_count`` times map
    to ``[UNK]``. ``vocab_size=N``: at most ``N`` WordPiece pieces learnt from the words seen at least
    ``min_count`` times (:func:`learn_wordpieces`), so an unseen word splits into known pieces.
    """
    counts = _caption_words(captions)
    counts = Counter({w: n for w, n in counts.items() if n >= min_count and w not in SPECIAL_TOKENS})
    if vocab_size is not None:
        pieces = learn_wordpieces(counts, vocab_size - len(SPECIAL_TOKENS))
        return BertTokenizer(vocab={token: i for i, token in enumerate(SPECIAL_TOKENS + tuple(pieces))})
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return BertTokenizer(vocab={token: i for i, token in enumerate(SPECIAL_TOKENS + tuple(words))})


def text_config(
    vocab_size: int,
    hidden_size: int = 768,
    num_hidden_layers: int = 12,
    num_attention_heads: int = 12,
    intermediate_size: int = 3072,
    max_position_embeddings: int = 512,
) -> BertConfig:
    """A ``BertConfig`` for the text encoder (defaults: bert-base sizes) over ``vocab_size`` tokens."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=0,
    )


def _projection(dim_in: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out), nn.ReLU(), nn.Linear(dim_out, dim_out))


def info_nce(audio: torch.Tensor, text: torch.Tensor, temp: float) -> torch.Tensor:
    """Symmetric InfoNCE of matching rows, summed over the batch (Auden's ``InfoNCELoss``)."""
    logits = audio @ text.T / temp
    targets = torch.arange(audio.shape[0], device=audio.device)
    return F.cross_entropy(logits, targets, reduction="sum") + F.cross_entropy(logits.T, targets, reduction="sum")


def embedding_regulariser(emb: torch.Tensor) -> torch.Tensor:
    """Auden's ``mean(|e|) / sqrt(sum(e^2))`` over the whole batch."""
    return emb.abs().mean() / emb.pow(2).sum().sqrt()


def batch_features(waves: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Fbank features ``[B, T, 80]`` (padded with ``log(1e-10)``) and frame counts of 16 kHz waveforms."""
    feats = [fbank(w.reshape(1, -1))[0] for w in waves]
    lengths = torch.tensor([f.shape[0] for f in feats])
    return nn.utils.rnn.pad_sequence(feats, batch_first=True, padding_value=FEATURE_PAD), lengths


class ClapModel(nn.Module):
    """Zipformer audio encoder + BERT text encoder + projections; ``forward`` returns the contrastive loss.

    ``text_encoder_config=None`` builds the audio encoder alone (for a captioning-only subclass).
    """

    def __init__(
        self,
        audio_config: ZipformerConfig,
        text_encoder_config: BertConfig | None,
        tokenizer: BertTokenizer,
        config: ClapConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config or ClapConfig()
        self.tokenizer = tokenizer
        self.audio_encoder = ZipformerModel(audio_config)
        self.contrastive = text_encoder_config is not None
        if text_encoder_config is not None:
            self.text_encoder = BertModel(text_encoder_config, add_pooling_layer=False)
            dim = self.config.shared_emb_dim
            self.text_proj = _projection(text_encoder_config.hidden_size, dim)
            self.audio_proj = _projection(self.audio_encoder.output_dim, dim)

    def encode_audio(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """L2-normalised masked mean of the projected encoder frames: ``[B, shared_emb_dim]``."""
        return self.pool_frames(*self.audio_encoder(features, lengths))

    def pool_frames(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """:meth:`encode_audio` from encoder frames ``[B, T', D]`` already computed."""
        projected = self.audio_proj(frames)
        keep = ~make_pad_mask(frame_lengths, projected.shape[1])
        pooled = (projected * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True).clamp_min(1)
        return F.normalize(pooled, dim=-1)

    def encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        """L2-normalised projection of the [CLS] output: ``[B, shared_emb_dim]``."""
        device = self.text_proj[0].weight.device
        enc = self.tokenizer(
            list(captions),
            padding="longest",
            truncation=True,
            max_length=self.config.max_text_tokens,
            return_tensors="pt",
        )
        out = self.text_encoder(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
        return F.normalize(self.text_proj(out[0][:, 0]), dim=-1)

    def auden_config(self) -> dict[str, Any]:
        """This model's fields of an Auden ``config.json`` (besides the audio encoder's)."""
        if not self.contrastive:
            return {}
        return {
            "model_type": "clap",
            "text_encoder_config": json.loads(self.text_encoder.config.to_json_string(use_diff=False)),
            "loss": "info-nce",
            **{k: v for k, v in asdict(self.config).items() if k != "max_text_tokens"},
        }

    def head_names(self) -> tuple[str, ...]:
        """Sub-modules saved beside ``audio_encoder``."""
        return ("text_encoder", "text_proj", "audio_proj") if self.contrastive else ()

    def contrastive_loss(self, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """InfoNCE of matching audio and text embeddings, plus the embedding regulariser when configured."""
        loss = info_nce(audio, text, self.config.temp)
        if self.config.embed_reg:
            loss = loss + embedding_regulariser(audio) + embedding_regulariser(text)
        return loss

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, captions: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, audio embeddings, text embeddings) for a batch of matching audio and captions."""
        audio = self.encode_audio(features, lengths)
        text = self.encode_text(captions)
        return self.contrastive_loss(audio, text), audio, text


CLAP_TRAINING = training.TrainSettings(lr=1e-3)


def train_steps(
    model: ClapModel,
    batches: Iterable[ClapBatch],
    steps: int,
    optimizer: torch.optim.Optimizer | None = None,
    **settings: Any,
) -> list[float]:
    """Run ``steps`` AdamW steps over ``(waveforms, captions)`` batches (cycled); returns the losses.

    ``settings`` override :data:`CLAP_TRAINING` (fields of :class:`~xbench.encoders.training.TrainSettings`).
    """

    def loss_on_batch(batch: ClapBatch, _: torch.Generator) -> torch.Tensor:
        waves, captions = batch
        return model(*batch_features(waves), captions)[0]

    return training.train_steps(model, loss_on_batch, batches, steps, CLAP_TRAINING, optimizer, **settings)


def save_clap_checkpoint(model: ClapModel, folder: str | Path) -> Path:
    """Write ``model`` as an Auden model directory (config, ``model.safetensors``, tokenizer); returns it.

    A CLAP model has ``model_type`` ``clap``; a captioning model (:mod:`.caption`) ``audio_caption`` or
    ``clap_caption`` and its decoder keys (``text_decoder.*``, ``enc_dec_proj.*``).
    """
    folder = Path(folder)
    heads = {name: getattr(model, name) for name in model.head_names()}
    extra_state = {f"{name}.{key}": value for name, head in heads.items() for key, value in head.state_dict().items()}
    save_auden_checkpoint(model.audio_encoder, folder, "audio_encoder", model.auden_config(), extra_state)
    model.tokenizer.save_pretrained(str(folder))
    return folder


def load_clap_checkpoint(folder: str | Path) -> ClapModel:
    """Load a directory written by :func:`save_clap_checkpoint` (strict), e.g. to continue training."""
    folder = Path(folder)
    raw = json.loads((folder / "config.json").read_text())
    _, audio_config = load_auden_checkpoint(folder)
    text = raw.get("text_encoder_config")
    text_config_ = None if text is None else BertConfig(**{k: v for k, v in text.items() if k != "model_type"})
    config = ClapConfig(**{k: raw[k] for k in ("shared_emb_dim", "temp", "embed_reg") if k in raw})
    tokenizer = BertTokenizer.from_pretrained(str(folder))
    if "caption_config" in raw:
        from xbench.encoders.captionstew.pretrain.caption import AudioLanguageModel, CaptionConfig

        caption = CaptionConfig(**raw["caption_config"])
        weights = {k: raw[k] for k in ("contrastive_weight", "caption_weight")}
        model: ClapModel = AudioLanguageModel(audio_config, tokenizer, caption, text_config_, config, **weights)
    else:
        model = ClapModel(audio_config, text_config_, tokenizer, config)
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "audio_encoder.model_batch_count"]
    if missing or unexpected:
        raise RuntimeError(f"{folder}: missing keys {missing}, unexpected keys {unexpected}")
    return model.eval()
