"""BEATs masked acoustic-token prediction (the OpenBEATs/ESPnet recipe, iteration 1 targets).

Per step: the tokenizer labels every 16 x 16 fbank patch; 75 % of the patches are masked at random
and the encoder (the zoo's :class:`~xbench.encoders.beats.model.BeatsModel`) sees only the visible
ones, in their original order; a small transformer predictor (3 layers, encoder width, relative
position bias over the full sequence) re-inserts a learned mask token at the masked positions and
predicts each masked patch's code; the loss is cross-entropy with label smoothing 0.1 over masked
patches only. Later iterations swap the tokenizer for one distilled from the previous encoder.

:func:`encoder_checkpoint` writes the encoder in the Microsoft/OpenBEATs ``{"cfg", "model"}`` layout,
which :class:`~xbench.encoders.beats.encoder.BEATsEncoder` (and the reference code) loads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xbench.encoders import training
from xbench.encoders.beats.model import BeatsConfig, BeatsModel, EncoderLayer, relative_position_bucket
from xbench.encoders.beats.pretrain.tokenizer import RandomProjectionTokenizer


@dataclass(frozen=True)
class PretrainConfig:
    """Masking, predictor and loss settings (defaults: OpenBEATs)."""

    mask_ratio: float = 0.75
    predictor_layers: int = 3
    label_smoothing: float = 0.1


def make_blocks(cfg: BeatsConfig, dim: int, layers: int) -> nn.ModuleList:
    """``layers`` BEATs layers of width ``dim``; the first holds the relative position bias table, all share it."""
    rel = cfg.relative_position_embedding
    blocks = nn.ModuleList(
        EncoderLayer(cfg, dim, cfg.encoder_ffn_embed_dim, cfg.encoder_attention_heads, layers, rel and i == 0)
        for i in range(layers)
    )
    if rel:
        for block in blocks[1:]:
            block.self_attn.relative_attention_bias = blocks[0].self_attn.relative_attention_bias
    return blocks


def apply_blocks(blocks: nn.ModuleList, cfg: BeatsConfig, x: torch.Tensor) -> torch.Tensor:
    """Run :func:`make_blocks` layers over ``[B, N, D]`` with the relative position bias of the full length."""
    bias = None
    if cfg.relative_position_embedding:
        pos = torch.arange(x.shape[1], device=x.device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None], cfg.num_buckets, cfg.max_distance)
        bias = blocks[0].self_attn.relative_attention_bias(buckets).permute(2, 0, 1)
    for block in blocks:
        x = block(x, bias)
    return x


class BeatsPredictor(nn.Module):
    """Mask tokens at the masked positions, ``layers`` BEATs layers, logits over the codebook."""

    def __init__(self, cfg: BeatsConfig, vocab: int, layers: int = 3) -> None:
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.cfg = cfg
        self.decoder_embed = nn.Linear(dim, dim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.decoder_blocks = make_blocks(cfg, dim, layers)
        self.decoder_norm = nn.LayerNorm(dim)
        self.decoder_pred = nn.Linear(dim, vocab)

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(latent)
        b, n = ids_restore.shape
        x = torch.cat([x, self.mask_token.expand(b, n - x.shape[1], -1)], dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return self.decoder_pred(self.decoder_norm(apply_blocks(self.decoder_blocks, self.cfg, x)))


def mask_patches(
    x: torch.Tensor, mask_ratio: float, generator: training.RandomSource = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random ``1 - mask_ratio`` of ``[B, N, E]`` patches per clip, in their original order.

    Returns the kept patches, ``ids_restore`` (puts ``[kept, masked]`` back in place) and the
    boolean mask ``[B, N]`` (True = masked). ``generator`` may be a per-clip
    :class:`~xbench.encoders.training.RowRandom`.
    """
    b, n, e = x.shape
    keep = max(1, round(n * (1 - mask_ratio)))
    order = torch.argsort(training.uniform((b, n), generator).to(x.device), dim=1)
    keep_ids = order[:, :keep].sort(dim=1).values
    ids_restore = torch.argsort(torch.cat([keep_ids, order[:, keep:]], dim=1), dim=1)
    masked = torch.ones(b, n, dtype=torch.bool, device=x.device).scatter(1, keep_ids, False)
    return torch.gather(x, 1, keep_ids.unsqueeze(-1).expand(-1, -1, e)), ids_restore, masked


def valid_patches(lengths: torch.Tensor, cfg: BeatsConfig, patches: int) -> torch.Tensor:
    """``[B, N]`` True for patches computed from real samples (Kaldi frames of 25 ms every 10 ms, time-major)."""
    frames = 1 + (lengths.long() - 400).clamp_min(0) // 160
    steps = torch.arange(patches, device=lengths.device) // cfg.freq_tokens
    return steps[None, :] < (frames // cfg.input_patch_size)[:, None]


def row_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over clips of each clip's ``weight``-ed mean of ``values`` (``[B, N]``): every clip weighs the same."""
    weight = weight.to(values.dtype)
    return ((values * weight).sum(1) / weight.sum(1).clamp_min(1)).mean()


class BeatsMaskedPretraining(nn.Module):
    """Encoder + tokenizer + predictor; ``forward(wave)`` returns the loss and metrics.

    The tokenizer is the iteration-1 :class:`RandomProjectionTokenizer` or a trained
    :class:`~xbench.encoders.beats.pretrain.tokenizer.BeatsTokenizer` (frozen, always in eval mode).
    """

    def __init__(
        self,
        encoder_config: BeatsConfig,
        tokenizer: nn.Module | None = None,
        config: PretrainConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config or PretrainConfig()
        self.encoder = BeatsModel(encoder_config)
        self.tokenizer = (tokenizer or RandomProjectionTokenizer(encoder_config.input_patch_size)).requires_grad_(False)
        if self.tokenizer.patch_size != encoder_config.input_patch_size:
            raise ValueError("tokenizer and encoder patch sizes differ")
        self.predictor = BeatsPredictor(encoder_config, self.tokenizer.codebook_size, self.config.predictor_layers)

    def train(self, mode: bool = True) -> BeatsMaskedPretraining:
        super().train(mode)
        self.tokenizer.eval()
        return self

    def forward(
        self, wave: torch.Tensor, generator: training.RandomSource = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and metrics (masked-patch accuracy, share of the codebook among the targets).

        The loss is cross-entropy with label smoothing over each clip's masked patches, averaged over
        clips; ``lengths`` (real samples per clip) leaves patches of zero padding out.
        """
        fbank = self.encoder.fbank(wave)
        targets = self.tokenizer(fbank)
        kept, ids_restore, masked = mask_patches(self.encoder.patches(fbank), self.config.mask_ratio, generator)
        logits = self.predictor(self.encoder.encode_patches(kept), ids_restore)
        if lengths is not None:
            masked = masked & valid_patches(lengths, self.encoder.config, masked.shape[1])
        smoothing = self.config.label_smoothing
        ce = F.cross_entropy(logits.transpose(1, 2).float(), targets, label_smoothing=smoothing, reduction="none")
        loss = row_mean(ce, masked)
        with torch.no_grad():
            accuracy = (logits[masked].argmax(-1) == targets[masked]).float().mean().item() if masked.any() else 0.0
            coverage = targets.unique().numel() / self.tokenizer.codebook_size
        return loss, {"accuracy": accuracy, "target_coverage": coverage}


MASKED_TRAINING = training.TrainSettings(lr=5e-4, betas=(0.9, 0.98))


def train_steps(
    model: BeatsMaskedPretraining,
    batches: Iterable[torch.Tensor],
    steps: int,
    optimizer: torch.optim.Optimizer | None = None,
    **settings: Any,
) -> list[float]:
    """Run ``steps`` AdamW steps over ``batches`` of ``[B, W]`` waveforms (cycled); returns the losses.

    ``settings`` override :data:`MASKED_TRAINING` (fields of :class:`~xbench.encoders.training.TrainSettings`).
    """
    loss_on_batch = training.forward_loss(model)
    return training.train_steps(model, loss_on_batch, batches, steps, MASKED_TRAINING, optimizer, **settings)


def encoder_checkpoint(model: BeatsMaskedPretraining) -> dict[str, Any]:
    """The encoder as ``{"cfg", "model"}`` (Microsoft/OpenBEATs layout), with inference dropouts off."""
    cfg = replace(model.encoder.config, dropout=0.0, attention_dropout=0.0, encoder_layerdrop=0.0)
    state = {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}
    return {"cfg": cfg.to_dict(), "model": state}


def save_encoder_checkpoint(model: BeatsMaskedPretraining, path: str | Path) -> Path:
    """Write :func:`encoder_checkpoint` to ``path`` (loadable by ``BEATsEncoder(checkpoint=path)``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(encoder_checkpoint(model), path)
    return path
