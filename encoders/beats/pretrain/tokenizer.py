"""BEATs acoustic tokenizers: the frozen random projection of iteration 1 and the trained tokenizer of iterations 2+.

Iteration 1 (:class:`RandomProjectionTokenizer`): each 16 x 16 patch of the normalised fbank (the
patches the encoder embeds, in the same time-major order) is flattened, projected by a fixed Gaussian
matrix, LayerNorm-ed without affine parameters and labelled with the index of the nearest vector of
a fixed Gaussian codebook (BEST-RQ style). Nothing is trained; a seed fixes both matrices.

Iterations 2+ (:class:`BeatsTokenizer`, trained by :mod:`.distill`): a BEATs-shaped encoder over the
patches, a small projection to the codebook space and :class:`NormEMAVectorQuantizer` (unit-norm
inputs and codes, k-means initialisation on the first batch, EMA codebook), as Microsoft's
``Tokenizers.py`` / ``quantizer.py`` and ESPnet's ``beats_tokenizer.py`` describe.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xbench.encoders.beats.model import BeatsConfig, BeatsModel
from xbench.encoders.checkpoints import load_torch_checkpoint


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


# --------------------------------------------------------------------------------------------------
# Trained tokenizer (iterations 2+): a BEATs-shaped encoder, a projection and an EMA vector quantiser
# --------------------------------------------------------------------------------------------------


def l2norm(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` scaled to unit L2 norm."""
    return F.normalize(x, p=2.0, dim=-1)


def kmeans(
    samples: torch.Tensor, clusters: int, iterations: int = 10, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spherical k-means of unit rows ``[N, D]``: ``(centres [clusters, D], counts [clusters])``.

    Centres start at ``clusters`` rows drawn without replacement (with replacement when there are fewer
    rows than clusters); a centre that loses all its rows keeps its place. Assignment by cosine similarity.
    """
    n = samples.shape[0]
    if n >= clusters:
        picks = torch.randperm(n, generator=generator)[:clusters]
    else:
        picks = torch.randint(0, n, (clusters,), generator=generator)
    means = samples[picks.to(samples.device)]
    counts = torch.zeros(clusters, dtype=torch.long, device=samples.device)
    for _ in range(iterations):
        buckets = (samples @ means.T).argmax(dim=-1)
        counts = torch.bincount(buckets, minlength=clusters)
        sums = torch.zeros_like(means).index_add_(0, buckets, samples)
        empty = counts == 0
        means = torch.where(empty[:, None], means, l2norm(sums / counts.clamp_min(1)[:, None].to(sums)))
    return means, counts


class EmbeddingEMA(nn.Module):
    """The codebook of :class:`NormEMAVectorQuantizer` (buffers named as Microsoft's ``quantizer.py``)."""

    def __init__(self, codes: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(codes, dim))
        self.register_buffer("cluster_size", torch.zeros(codes))
        self.register_buffer("embed_avg", torch.zeros(codes, dim))
        self.register_buffer("initted", torch.zeros(1))


class NormEMAVectorQuantizer(nn.Module):
    """Nearest unit-norm code of unit-norm inputs; codebook from k-means on the first batch, then EMA updates.

    Training: each batch moves every used code towards the normalised mean of its inputs
    (``decay`` 0.99, renormalised) and the EMA of code counts (``cluster_size``) is kept; counts and
    sums are summed over all processes, and the first batch's k-means runs on the inputs of every
    process, so DDP gives the codebook of one process with the whole batch. The loss is the
    commitment term ``beta * ||e - sg[v]||^2``; gradients reach the inputs straight through.
    """

    def __init__(self, codes: int, dim: int, beta: float = 1.0, decay: float = 0.99, kmeans_iters: int = 10) -> None:
        super().__init__()
        self.codes, self.dim, self.beta, self.decay, self.kmeans_iters = codes, dim, beta, decay, kmeans_iters
        self.embedding = EmbeddingEMA(codes, dim)
        self.register_buffer("cluster_size", torch.zeros(codes))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Indices of the nearest codes of unit rows ``[N, D]``."""
        weight = self.embedding.weight
        distance = z.pow(2).sum(-1, keepdim=True) + weight.pow(2).sum(-1) - 2 * z @ weight.T
        return distance.argmin(dim=-1)

    @torch.no_grad()
    def _init(self, z: torch.Tensor, generator: torch.Generator | None) -> None:
        from xbench.encoders.pretraining.distributed import gather_objects

        every = torch.cat([part.to(z.device) for part in gather_objects(z.detach().cpu())])
        means, counts = kmeans(every, self.codes, self.kmeans_iters, generator)
        self.embedding.weight.copy_(means)
        self.embedding.cluster_size.copy_(counts.to(self.embedding.cluster_size))
        self.embedding.initted.fill_(1)

    def forward(
        self, z: torch.Tensor, valid: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, N, D]`` -> (quantised ``[B, N, D]``, loss, codes ``[B, N]``, code counts of the batch ``[codes]``).

        ``valid`` (``[B, N]`` bool) limits the codebook updates, the counts and the loss to real patches.
        """
        from xbench.encoders.pretraining.distributed import all_reduce_sum_

        z = l2norm(z.float())
        rows = z.reshape(-1, self.dim)
        keep = torch.ones(rows.shape[0], dtype=torch.bool, device=z.device) if valid is None else valid.reshape(-1)
        if self.training and not bool(self.embedding.initted):
            self._init(rows[keep], generator)
        index = self.nearest(rows)
        quantised = self.embedding.weight[index].view_as(z)
        one_hot = F.one_hot(index[keep], self.codes).to(z.dtype)
        bins = all_reduce_sum_(one_hot.sum(0).detach())
        if self.training:
            with torch.no_grad():
                self.cluster_size.mul_(self.decay).add_(bins, alpha=1 - self.decay)
                sums = all_reduce_sum_(rows[keep].detach().T @ one_hot).T
                used = bins > 0
                means = l2norm(sums / bins.clamp_min(1)[:, None])
                weight = self.embedding.weight
                moved = l2norm(weight * self.decay + means * (1 - self.decay))
                weight.copy_(torch.where(used[:, None], moved, weight))
        per_patch = (quantised.detach() - z).pow(2).mean(-1)
        mask = torch.ones_like(per_patch) if valid is None else valid.to(per_patch)
        loss = self.beta * ((per_patch * mask).sum(1) / mask.sum(1).clamp_min(1)).mean()
        return z + (quantised - z).detach(), loss, index.view(z.shape[:-1]), bins


class BeatsTokenizer(BeatsModel):
    """The BEATs tokenizer of iterations 2+: encoder, ``quantize_layer`` (D -> D, tanh, D -> quant_dim), ``quantize``.

    State-dict keys follow Microsoft's ``Tokenizers.py`` (encoder keys at the top level, then
    ``quantize_layer.*`` and ``quantize.*``). ``forward(fbank)`` labels every patch with its code.
    """

    def __init__(
        self, config: BeatsConfig, codebook_size: int = 1024, codebook_dim: int = 256, **quantizer: Any
    ) -> None:
        super().__init__(config)
        dim = config.encoder_embed_dim
        self.quantize_layer = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, codebook_dim))
        self.quantize = NormEMAVectorQuantizer(codebook_size, codebook_dim, **quantizer)

    @property
    def patch_size(self) -> int:
        return self.config.input_patch_size

    @property
    def codebook_size(self) -> int:
        return self.quantize.codes

    def encode(
        self, fbank: torch.Tensor, valid: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise every patch of ``fbank``: :meth:`NormEMAVectorQuantizer.forward`'s four outputs."""
        features = self.encode_patches(self.patches(fbank))
        return self.quantize(self.quantize_layer(features), valid, generator)

    @torch.no_grad()
    def forward(self, fbank: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """``[B, frames, 128]`` normalised fbank -> ``[B, N]`` codes (no codebook update)."""
        features = self.encode_patches(self.patches(fbank))
        z = l2norm(self.quantize_layer(features).float())
        return self.quantize.nearest(z.reshape(-1, z.shape[-1])).view(z.shape[:-1])


def tokenizer_checkpoint(tokenizer: BeatsTokenizer) -> dict[str, Any]:
    """``{"cfg", "model"}`` as Microsoft's ``Tokenizer_iter*.pt`` (``cfg`` adds ``quant_n`` and ``quant_dim``)."""
    cfg = {**tokenizer.config.to_dict(), "quant_n": tokenizer.quantize.codes, "quant_dim": tokenizer.quantize.dim}
    return {"cfg": cfg, "model": {k: v.detach().clone() for k, v in tokenizer.state_dict().items()}}


def load_tokenizer(path: str | Path) -> BeatsTokenizer:
    """A frozen :class:`BeatsTokenizer` in eval mode from a :func:`tokenizer_checkpoint` file (strict keys)."""
    obj = load_torch_checkpoint(path, mmap=False)
    cfg = dict(obj["cfg"])
    codes, dim = int(cfg.pop("quant_n")), int(cfg.pop("quant_dim"))
    tokenizer = BeatsTokenizer(BeatsConfig.from_dict(cfg), codes, dim)
    tokenizer.load_state_dict(obj["model"])
    return tokenizer.requires_grad_(False).eval()
