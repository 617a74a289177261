"""Training the BEATs tokenizer of iteration k+1 by distilling the iteration-k encoder (the teacher).

The student :class:`~xbench.encoders.beats.pretrain.tokenizer.BeatsTokenizer` encodes every patch of
the clip (no masking), projects it to the codebook space and quantises it; an estimator (a linear
map from the codebook space to the teacher's width, a few BEATs layers with relative position bias, a
LayerNorm) predicts the frozen teacher's last-layer feature of each patch from the quantised codes.
Loss = mean over patches of ``1 - cos(estimate, teacher)`` + the quantiser's commitment term, as in the
BEATs / OpenBEATs papers' knowledge-distillation objective; the codebook follows the inputs by EMA
after a k-means initialisation. Metrics: the distillation cosine and the codebook usage (share of the
codes used in the batch and the perplexity of their counts). Only the tokenizer is kept:
:func:`~xbench.encoders.beats.pretrain.tokenizer.tokenizer_checkpoint` writes Microsoft's layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from xbench.encoders import training
from xbench.encoders.beats.model import BeatsModel
from xbench.encoders.beats.pretrain.masked import apply_blocks, make_blocks, row_mean, valid_patches
from xbench.encoders.beats.pretrain.tokenizer import BeatsTokenizer


@dataclass(frozen=True)
class DistillConfig:
    """Estimator depth (ESPnet: 3 layers) and the k-means seed."""

    estimator_layers: int = 3
    kmeans_seed: int = 0


class TokenizerEstimator(nn.Module):
    """Quantised codes ``[B, N, quant_dim]`` -> estimates of the teacher's features ``[B, N, D_teacher]``."""

    def __init__(self, teacher: BeatsModel, codebook_dim: int, layers: int) -> None:
        super().__init__()
        self.cfg = teacher.config
        dim = self.cfg.encoder_embed_dim
        self.connector_layer = nn.Linear(codebook_dim, dim)
        self.decoder_blocks = make_blocks(self.cfg, dim, layers)
        self.decoder_norm = nn.LayerNorm(dim)

    def forward(self, quantised: torch.Tensor) -> torch.Tensor:
        x = apply_blocks(self.decoder_blocks, self.cfg, self.connector_layer(quantised))
        return self.decoder_norm(x)


class TokenizerPretraining(nn.Module):
    """Student tokenizer + estimator, distilled from a frozen teacher encoder; ``forward(wave)`` -> (loss, metrics)."""

    def __init__(self, tokenizer: BeatsTokenizer, teacher: BeatsModel, config: DistillConfig | None = None) -> None:
        super().__init__()
        self.config = config or DistillConfig()
        if teacher.config.input_patch_size != tokenizer.config.input_patch_size:
            raise ValueError("teacher and tokenizer patch sizes differ")
        self.tokenizer = tokenizer
        self.teacher = teacher.requires_grad_(False).eval()
        self.estimator = TokenizerEstimator(teacher, tokenizer.quantize.dim, self.config.estimator_layers)
        self.kmeans_generator = torch.Generator().manual_seed(self.config.kmeans_seed)

    def train(self, mode: bool = True) -> TokenizerPretraining:
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(
        self, wave: torch.Tensor, generator: training.RandomSource = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        fbank = self.teacher.fbank(wave)
        with torch.no_grad():
            target = self.teacher.encode_patches(self.teacher.patches(fbank))
        valid = None if lengths is None else valid_patches(lengths, self.tokenizer.config, target.shape[1])
        quantised, commitment, _codes, bins = self.tokenizer.encode(fbank, valid, self.kmeans_generator)
        cosine = F.cosine_similarity(self.estimator(quantised).float(), target.float(), dim=-1)
        weight = torch.ones_like(cosine, dtype=torch.bool) if valid is None else valid
        loss = row_mean(1 - cosine, weight) + commitment
        with torch.no_grad():
            share = bins / bins.sum().clamp_min(1)
            perplexity = torch.exp(-(share * share.clamp_min(1e-12).log()).sum()).item()
            metrics = {
                "cosine": float(row_mean(cosine.detach(), weight)),
                "codebook_used": float((bins > 0).float().mean()),
                "codebook_perplexity": perplexity,
            }
        return loss, metrics
