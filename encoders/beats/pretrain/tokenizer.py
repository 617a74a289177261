"""Iteration-1 acoustic tokenizer of BEATs: a frozen random projection of fbank patches onto a random codebook.

Each 16 x 16 patch of the normalised fbank (the patches the encoder embeds, in the same time-major
order) is flattened, projected by a fixed Gaussian matrix, LayerNorm-ed without affine parameters
and labelled with the index of the nearest vector of a fixed Gaussian codebook (BEST-RQ style).
Nothing here is trained; a seed fixes both matrices.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RandomProjectionTokenizer(nn.Module):
    """``[B, frames, bins]`` fbank -> ``[B, (frames // p) * (bins // p)]`` codes in ``[0, codebook_size)``."""

    def __init__(
        self,
        patch_size: int = 16,
        codebook_dim: int = 256,
        codebook_size: int = 1024,
        seed: int = 45,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        patch_dim = patch_size * patch_size
        gen = torch.Generator().manual_seed(seed)
        std = math.sqrt(2.0 / (patch_dim + codebook_dim))  # Xavier-normal
        self.register_buffer("projection", torch.randn(codebook_dim, patch_dim, generator=gen) * std)
        self.register_buffer("codebook", torch.randn(codebook_size, codebook_dim, generator=gen))

    @property
    def codebook_size(self) -> int:
        return self.codebook.shape[0]

    def patches(self, fbank: torch.Tensor) -> torch.Tensor:
        """``[B, frames, bins] -> [B, N, p * p]`` flattened patches, token ``t * (bins // p) + f``."""
        p = self.patch_size
        return F.unfold(fbank.unsqueeze(1), kernel_size=p, stride=p).transpose(1, 2)

    @torch.no_grad()
    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        x = self.patches(fbank.float()) @ self.projection.T
        x = F.layer_norm(x, x.shape[-1:])
        distance = (x * x).sum(-1, keepdim=True) - 2 * x @ self.codebook.T + (self.codebook**2).sum(-1)
        return distance.argmin(dim=-1)
