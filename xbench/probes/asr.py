"""LibriSpeech ASR probe (``AsrModelForGeneration``, ``xares/models/asr.py``): a frozen causal LM, a trained adapter.

A SwiGLU adapter ``silu(Linear(D, H)(x)) * Linear(D, H)(x) → Linear(H, d_model)`` maps each encoder frame
into the decoder's embedding space (``H`` = the decoder's ``intermediate_size``, 4864 for Qwen2.5-0.5B;
``d_model`` its ``hidden_size``). One training sequence is the adapted frames of an utterance (its true
length) followed by the token embeddings of ``separator + transcript + eos``; labels are −100 on audio
and padding and the token ids on the text, and the decoder's causal-LM loss trains the adapter alone.
Each utterance is laid out contiguously and padded on the right (on the left for generation), with
position ids counting real positions only, so an utterance's result does not depend on its batch.

Only the positions whose next token is labelled go through the decoder's LM head (the loss), or the
transcript's positions (teacher forcing): never the audio frames, whose ~150k-way logits the loss ignores.
On CUDA with ``autocast`` the frozen decoder's linear weights are converted to float16 once
(:func:`half_linear_weights`) instead of by autocast at every op and decoding step.

Testing decodes greedily (``do_sample=False``) after ``audio + separator``; X-ARES sampled with
``top_k=1`` (the same thing) and ``repetition_penalty=1.1`` (an option here). Model selection, per
``validation``: ``"greedy"`` decodes up to ``valid_max_utterances`` validation utterances and keeps the
best iWER; ``"teacher_forced"`` is X-ARES's cheap proxy: one forward pass with the reference text,
argmax tokens, each hypothesis cut to the reference's character count. Trained by
:func:`xbench.probes.loop.train_loop` (Adam, cosine schedule, seeding); the decoder is held outside the
probe's modules, so only the adapter is trained and kept.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xbench.probes.loop import TrainResult, train_loop
from xbench.scoring.metrics import inverse_word_error_rate, word_error_rate

DEFAULT_DECODER = "Qwen/Qwen2.5-0.5B"
DECODER_ENV = "XBENCH_ASR_DECODER"
SEPARATOR = "<|vision_end|>"
VALIDATION_MODES = ("greedy", "teacher_forced")


class DecoderUnavailable(RuntimeError):
    """The ASR decoder (model or tokenizer) could not be loaded."""


def resolve_decoder(source: str | None = None) -> str:
    """The decoder to use: ``source``, else ``$XBENCH_ASR_DECODER``, else X-ARES's ``Qwen/Qwen2.5-0.5B``."""
    return str(source or os.environ.get(DECODER_ENV) or DEFAULT_DECODER)


def load_decoder(source: str | None = None, device: str = "cpu") -> tuple[Any, Any, str]:
    """(frozen float32 causal LM in eval mode, its tokenizer, the resolved id or path).

    A local folder (``save_pretrained`` layout) or a hub id found in the local Hugging Face cache
    works offline; anything else needs the hub.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = resolve_decoder(source)
    local = Path(name).expanduser()
    where = str(local) if local.exists() else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, attn_implementation="sdpa")
    except (OSError, ValueError) as exc:
        reason = (str(exc).splitlines() or [""])[0]
        raise DecoderUnavailable(
            f"cannot load the ASR decoder {name!r}: {type(exc).__name__}: {reason}"
            f"\nThe LibriSpeech probe needs a causal LM ({DEFAULT_DECODER} in X-ARES). Offline, download it "
            f"elsewhere (e.g. `huggingface-cli download {DEFAULT_DECODER} --local-dir DIR`), copy DIR here and set "
            f"{DECODER_ENV}=DIR or pass RunOptions(asr_decoder=DIR)."
        ) from exc
    model = model.to(device=device, dtype=torch.float32).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    if tokenizer.eos_token_id is None:
        raise DecoderUnavailable(f"ASR decoder {name!r}: its tokenizer has no eos token")
    return model, tokenizer, name


@dataclass(frozen=True)
class AsrConfig:
    """Training and decoding settings of the ASR probe (X-ARES defaults unless noted)."""

    epochs: int = 10
    learning_rate: float = 1e-3
    batch_size: int = 4
    batch_size_valid: int | None = None
    valid_every: int = 1
    adapter_hidden: int | None = None  # None: the decoder's intermediate_size
    separator: str = SEPARATOR
    validation: str = "greedy"  # or "teacher_forced" (X-ARES)
    valid_max_utterances: int | None = 200  # greedy validation only; None: all
    max_new_tokens: int = 200
    repetition_penalty: float = 1.0  # X-ARES: 1.1
    autocast: bool = True  # float16 autocast around the decoder on CUDA, as X-ARES
    seed: int = 42
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.validation not in VALIDATION_MODES:
            raise ValueError(f"validation must be one of {VALIDATION_MODES}, got {self.validation!r}")


@dataclass
class AsrData:
    """One split: per-utterance frames ``[T_i, D]`` and transcripts."""

    frames: list[torch.Tensor]
    texts: list[str]

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.texts):
            raise ValueError(f"{len(self.frames)} utterances but {len(self.texts)} transcripts")

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int | None) -> AsrData:
        """The first ``n`` utterances (all for None)."""
        return self if n is None or n >= len(self) else AsrData(self.frames[:n], self.texts[:n])


class SwiGLUAdapter(torch.nn.Module):
    """``proj(silu(fc_1(x)) * fc_2(x))``: encoder frames ``[..., D]`` → decoder embeddings ``[..., d_model]``."""

    def __init__(self, dim: int, hidden: int, d_model: int) -> None:
        super().__init__()
        self.fc_1 = torch.nn.Linear(dim, hidden)
        self.fc_2 = torch.nn.Linear(dim, hidden)
        self.proj = torch.nn.Linear(hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.nn.functional.silu(self.fc_1(x)) * self.fc_2(x))


def _pad_rows(rows: Sequence[torch.Tensor], value: float, left: bool = False) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = rows[0].new_full((len(rows), width, *rows[0].shape[1:]), value)
    for i, r in enumerate(rows):
        if left:
            out[i, width - len(r) :] = r
        else:
            out[i, : len(r)] = r
    return out


def _autocast(config: AsrConfig) -> bool:
    return str(config.device).startswith("cuda") and config.autocast


def half_linear_weights(decoder: torch.nn.Module, dtype: torch.dtype = torch.float16) -> None:
    """Convert the frozen ``decoder``'s linear layers to ``dtype`` once, as autocast would at every call (the
    same products); an LM head tied to the input embeddings gets its own copy, the embeddings stay as they
    are. Idempotent."""
    head = decoder.get_output_embeddings()
    embeddings = decoder.get_input_embeddings()
    if head is not None and head.weight is embeddings.weight:
        head.weight = torch.nn.Parameter(head.weight.detach().to(dtype), requires_grad=False)
    for module in decoder.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(dtype)


class AsrProbe(torch.nn.Module):
    """The trainable adapter; the frozen decoder and tokenizer are held outside the state dict."""

    def __init__(self, decoder: Any, tokenizer: Any, dim: int, config: AsrConfig) -> None:
        super().__init__()
        if _autocast(config):
            half_linear_weights(decoder)
        cfg = decoder.config
        hidden = config.adapter_hidden or cfg.intermediate_size
        self.adapter = SwiGLUAdapter(dim, hidden, cfg.hidden_size)
        self.config = config
        object.__setattr__(self, "decoder", decoder)  # not a submodule: never trained, never saved
        self.tokenizer = tokenizer
        self.eos_id = int(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id
        self.pad_id = int(self.eos_id if pad is None else pad)
        self.sep_ids = self._ids(config.separator)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _run(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        with torch.autocast("cuda", dtype=torch.float16, enabled=_autocast(self.config)):
            return fn(**kwargs)

    def _hidden(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The decoder's last hidden states ``[B, L, H]`` (before the LM head)."""
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        out = self._run(self.decoder.base_model, inputs_embeds=embeds, attention_mask=mask, position_ids=positions)
        return out.last_hidden_state

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head on the selected hidden states ``[N, H]``: float32 logits ``[N, vocab]``."""
        return self._run(self.decoder.get_output_embeddings(), input=hidden).float()

    def _audio(self, frames: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        device = self.config.device
        lengths = [len(f) for f in frames]
        adapted = self.adapter(_pad_rows([f.float() for f in frames], 0.0).to(device))
        return [adapted[i, :n] for i, n in enumerate(lengths)]

    def _sequences(
        self, frames: Sequence[torch.Tensor], texts: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """Right-padded ``inputs_embeds``, attention mask, labels; and each utterance's audio length."""
        embed = self.decoder.get_input_embeddings()
        device = self.config.device
        rows, labels = [], []
        audio = self._audio(frames)
        for a, text in zip(audio, texts, strict=True):
            ids = torch.tensor(self.sep_ids + self._ids(text) + [self.eos_id], device=device)
            rows.append(torch.cat([a, embed(ids).to(a.dtype)]))
            labels.append(torch.cat([torch.full((len(a),), -100, device=device), ids]))
        mask = _pad_rows([torch.ones(len(r), dtype=torch.long, device=device) for r in rows], 0)
        return _pad_rows(rows, 0.0), mask, _pad_rows(labels, -100), [len(a) for a in audio]

    def loss(self, frames: Sequence[torch.Tensor], texts: Sequence[str]) -> torch.Tensor:
        """The decoder's causal-LM loss on the transcripts (sep and eos included, as X-ARES): the mean cross
        entropy of every labelled token given what precedes it, as ``decoder(..., labels=labels).loss``, with
        the LM head applied at those positions only."""
        embeds, mask, labels, _ = self._sequences(frames, texts)
        hidden = self._hidden(embeds, mask)
        targets = labels[:, 1:]
        labelled = targets != -100  # position t predicts token t + 1
        return torch.nn.functional.cross_entropy(self._logits(hidden[:, :-1][labelled]), targets[labelled])

    @torch.no_grad()
    def teacher_forced(self, frames: Sequence[torch.Tensor], texts: Sequence[str]) -> list[str]:
        """X-ARES's validation proxy: argmax next tokens given the reference, cut to its character count."""
        embeds, mask, _, audio_lengths = self._sequences(frames, texts)
        hidden = self._hidden(embeds, mask)
        text = mask.bool().clone()
        for i, n_audio in enumerate(audio_lengths):
            text[i, :n_audio] = False  # the transcript's positions only
        preds = self._logits(hidden[text]).argmax(-1).split(text.sum(1).tolist())
        return [
            self.tokenizer.decode(tokens.tolist(), skip_special_tokens=True)[: len(ref)]
            for tokens, ref in zip(preds, texts, strict=True)
        ]

    @torch.no_grad()
    def transcribe(self, frames: Sequence[torch.Tensor], max_new_tokens: int, repetition_penalty: float) -> list[str]:
        """Greedy transcripts of a batch (left-padded ``audio + separator`` prompts)."""
        embed = self.decoder.get_input_embeddings()
        sep = embed(torch.tensor(self.sep_ids, device=self.config.device, dtype=torch.long))
        rows = [torch.cat([a, sep.to(a.dtype)]) for a in self._audio(frames)]
        ones = [torch.ones(len(r), dtype=torch.long, device=self.config.device) for r in rows]
        with warnings.catch_warnings():
            # with a prompt given as embeddings the penalty covers generated tokens only, as in X-ARES
            warnings.filterwarnings("ignore", message="Passing `repetition_penalty` with `inputs_embeds`")
            out = self._run(
                self.decoder.generate,
                inputs_embeds=_pad_rows(rows, 0.0, left=True),
                attention_mask=_pad_rows(ones, 0, left=True),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                repetition_penalty=repetition_penalty,
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_id,
            )
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def transcribe(
    probe: AsrProbe, data: AsrData, batch_size: int, max_new_tokens: int, repetition_penalty: float
) -> list[str]:
    """Greedy transcripts of every utterance, in order."""
    probe.eval()
    out: list[str] = []
    for start in range(0, len(data), batch_size):
        out.extend(probe.transcribe(data.frames[start : start + batch_size], max_new_tokens, repetition_penalty))
    return out


def utterance_errors(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Word edit distance and reference word count per utterance (lower-cased, whitespace words).

    ``errors.sum() / words.sum()`` is the corpus WER of :func:`xbench.scoring.metrics.word_error_rate`.
    """
    errors, words = [], []
    for ref, hyp in zip(references, hypotheses, strict=True):
        n = len(ref.split())
        errors.append(round(word_error_rate([ref], [hyp]) * n) if n else len(hyp.split()))
        words.append(n)
    return np.asarray(errors, dtype=np.int64), np.asarray(words, dtype=np.int64)


def inverse_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """iWER = max(0, 1 − corpus WER), X-ARES's ``WER_inv`` (the metric table's function)."""
    return inverse_word_error_rate(references, hypotheses)


def _validate(probe: AsrProbe, valid: AsrData, config: AsrConfig) -> float:
    bs = config.batch_size_valid or config.batch_size
    if config.validation == "greedy":
        data = valid.head(config.valid_max_utterances)
        hyps = transcribe(probe, data, bs, config.max_new_tokens, config.repetition_penalty)
    else:
        data, hyps = valid, []
        probe.eval()
        for start in range(0, len(valid), bs):
            hyps.extend(probe.teacher_forced(valid.frames[start : start + bs], valid.texts[start : start + bs]))
    return inverse_wer(data.texts, hyps)


def train_asr_probe(
    train: AsrData,
    valid: AsrData,
    decoder: Any,
    tokenizer: Any,
    config: AsrConfig,
    progress: Callable[[str], None] | None = None,
) -> TrainResult[AsrProbe]:
    """Train the adapter of an :class:`AsrProbe` with the frozen ``decoder``; keep the best validation iWER."""

    def batch_loss(probe: AsrProbe, idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        picked = idx.tolist()
        return probe.loss([train.frames[i] for i in picked], [train.texts[i] for i in picked]), len(picked)

    return train_loop(
        "ASR probe",
        train,
        valid,
        lambda: AsrProbe(decoder, tokenizer, train.frames[0].shape[-1], config).to(config.device),
        lambda gen: torch.randperm(len(train), generator=gen).split(config.batch_size),
        batch_loss,
        lambda probe: _validate(probe, valid, config),
        config,
        progress,
    )
