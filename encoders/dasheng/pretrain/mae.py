"""Dasheng masked-autoencoder pretraining: encoder on visible patches, small decoder, MSE on masked patches.

The recipe of the Dasheng paper (Interspeech 2024): mask 75 % of the (64 x 4) log-mel patches
(adjacent pairs masked together, ``group=2``), encode the visible ones with the zoo's
:class:`~xbench.encoders.dasheng.model.DashengModel`, re-insert learned mask tokens, run a narrow
transformer decoder (512-d, 8 blocks, 16 heads for base) and regress every patch of the log-mel dB
(before the BatchNorm), each patch normalised to zero mean and unit variance; the loss counts
masked patches only. Training clips must fit one position table (``target_length`` frames, 10.08 s).

:func:`train_steps` runs the zoo's AdamW loop (:mod:`xbench.encoders.training`);
:func:`encoder_checkpoint` writes the encoder in the Zenodo ``{"model", "config"}`` layout that
:class:`~xbench.encoders.dasheng.encoder.DashengEncoder` and the ``dasheng`` package load.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xbench.encoders import training
from xbench.encoders.dasheng.model import Block, DashengConfig, DashengModel


@dataclass(frozen=True)
class MAEConfig:
    """Decoder and masking settings (defaults: the paper's base recipe)."""

    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    mask_ratio: float = 0.75
    group: int = 2  # adjacent tokens masked together; 1 = independent tokens
    norm_pix_loss: bool = True


class MAEDecoder(nn.Module):
    """Projects visible latents, re-inserts mask tokens in place, predicts every patch."""

    def __init__(self, input_dim: int, patch_dim: int, num_patches: int, cfg: MAEConfig) -> None:
        super().__init__()
        self.input_proj = nn.Linear(input_dim, cfg.decoder_dim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, cfg.decoder_dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, cfg.decoder_dim))
        self.blocks = nn.ModuleList(Block(cfg.decoder_dim, cfg.decoder_heads) for _ in range(cfg.decoder_depth))
        self.norm = nn.LayerNorm(cfg.decoder_dim, eps=1e-6)
        self.output = nn.Linear(cfg.decoder_dim, patch_dim)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.input_proj(latent)
        b, length = ids_restore.shape
        x = torch.cat([x, self.mask_token.expand(b, length - x.shape[1], -1)], dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = x + self.pos_embed[:, :length]
        for block in self.blocks:
            x = block(x)
        return self.output(self.norm(x))


def random_masking(
    tokens: torch.Tensor, mask_ratio: float, group: int = 1, generator: training.RandomSource = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random ``1 - mask_ratio`` of ``[B, L, D]`` tokens per clip, in groups of ``group`` neighbours.

    Returns the kept tokens ``[B, keep, D]``, the mask ``[B, L]`` (1 = masked) and the permutation
    ``ids_restore`` that puts ``[kept, masked]`` back in order. ``group`` falls back to 1 when it
    does not divide ``L``. ``generator`` may be a :class:`~xbench.encoders.training.RowRandom` (one per clip).
    """
    b, length, dim = tokens.shape
    group = group if group > 1 and length % group == 0 else 1
    keep = int(length * (1 - mask_ratio))
    noise = training.uniform((b, length // group), generator).to(tokens.device)
    order = torch.argsort(noise, dim=1)
    offsets = torch.arange(group, device=tokens.device)
    ids_shuffle = (order.unsqueeze(-1) * group + offsets).flatten(1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    kept = torch.gather(tokens, 1, ids_shuffle[:, :keep].unsqueeze(-1).expand(-1, -1, dim))
    mask = torch.ones(b, length, device=tokens.device)
    mask[:, :keep] = 0
    return kept, torch.gather(mask, 1, ids_restore), ids_restore


def mae_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix_loss: bool = True) -> torch.Tensor:
    """Per-patch MSE averaged over each clip's masked patches, then over clips.

    Targets are normalised per patch when ``norm_pix_loss``. With the same number of masked patches
    in every clip this is the mean over all masked patches of the batch, as the paper's loss; with
    padding left out of ``mask`` every clip still weighs the same, however the batch is split.
    """
    if norm_pix_loss:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    per_patch = (pred.float() - target.float()).pow(2).mean(-1)
    return ((per_patch * mask).sum(1) / mask.sum(1).clamp_min(1)).mean()


class DashengMAE(nn.Module):
    """Encoder (a :class:`DashengModel`) + :class:`MAEDecoder`; ``forward(wave)`` returns the loss and parts."""

    def __init__(self, encoder_config: DashengConfig | None = None, mae_config: MAEConfig | None = None) -> None:
        super().__init__()
        self.mae_config = mae_config or MAEConfig()
        self.encoder = DashengModel(encoder_config or DashengConfig())
        cfg = self.encoder.config
        patch_dim = cfg.patch_size[0] * cfg.patch_size[1]
        num_patches = (cfg.n_mels // cfg.patch_stride[0]) * cfg.chunk_tokens
        self.decoder = MAEDecoder(cfg.embed_dim, patch_dim, num_patches, self.mae_config)

    def patchify(self, db: torch.Tensor) -> torch.Tensor:
        """``[B, F, T]`` log-mel -> ``[B, L, patch_h * patch_w]`` in token order (frequency-major)."""
        cfg = self.encoder.config
        return F.unfold(db.unsqueeze(1), kernel_size=cfg.patch_size, stride=cfg.patch_stride).transpose(1, 2)

    def forward(
        self, wave: torch.Tensor, generator: training.RandomSource = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, W]`` -> (loss, predictions ``[B, L, P]``, targets ``[B, L, P]``, loss mask ``[B, L]``).

        ``lengths`` (real samples per clip) leaves the patches of zero padding out of the loss.
        """
        enc = self.encoder
        db = enc.log_mel(wave)
        if db.shape[-1] // enc.config.patch_stride[1] > enc.config.chunk_tokens:
            seconds = enc.config.target_length * enc.config.hop_size / 16000
            raise ValueError(f"MAE clips must be at most {seconds:.2f} s ({enc.config.chunk_tokens} tokens)")
        tokens = enc.embed(enc.normalise(db)).flatten(2).transpose(1, 2)
        cfg = self.mae_config
        kept, mask, ids_restore = random_masking(tokens, cfg.mask_ratio, cfg.group, generator)
        pred = self.decoder(enc.encode_tokens(kept), ids_restore)
        target = self.patchify(db)
        if lengths is not None:
            mask = mask * self.valid_tokens(lengths, db.shape[-1] // enc.config.patch_stride[1]).to(mask)
        return mae_loss(pred, target, mask, cfg.norm_pix_loss), pred, target, mask

    def valid_tokens(self, lengths: torch.Tensor, time_tokens: int) -> torch.Tensor:
        """``[B, L]`` True for tokens computed from real samples (frequency-major order, as the patches)."""
        cfg = self.encoder.config
        frames = 1 + lengths.long() // cfg.hop_size
        valid_t = torch.arange(time_tokens, device=lengths.device)[None, :] < (frames // cfg.patch_stride[1])[:, None]
        return valid_t.repeat(1, cfg.n_mels // cfg.patch_stride[0])


def random_crop(wave: torch.Tensor, samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random ``samples``-long crop of each row of ``[B, W]`` (zero-padded when shorter)."""
    if wave.shape[-1] <= samples:
        return F.pad(wave, (0, samples - wave.shape[-1]))
    starts = torch.randint(0, wave.shape[-1] - samples + 1, (wave.shape[0],), generator=generator)
    return torch.stack([row[s : s + samples] for row, s in zip(wave, starts.tolist(), strict=True)])


MAE_TRAINING = training.TrainSettings(lr=3e-4, betas=(0.9, 0.95))


def train_steps(
    model: DashengMAE,
    batches: Iterable[torch.Tensor],
    steps: int,
    optimizer: torch.optim.Optimizer | None = None,
    **settings: Any,
) -> list[float]:
    """Run ``steps`` AdamW steps over ``batches`` (``[B, W]`` waveforms, cycled); returns the losses.

    ``settings`` override :data:`MAE_TRAINING` (fields of :class:`~xbench.encoders.training.TrainSettings`).
    """
    loss_on_batch = training.forward_loss(model)
    return training.train_steps(model, loss_on_batch, batches, steps, MAE_TRAINING, optimizer, **settings)


def encoder_checkpoint(model: DashengMAE) -> dict[str, Any]:
    """The encoder in the Zenodo layout: ``{"model": state_dict, "config": constructor kwargs}``."""
    state = {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}
    return {"model": state, "config": model.encoder.config.to_dict(), "mae": asdict(model.mae_config)}


def save_encoder_checkpoint(model: DashengMAE, path: str | Path) -> Path:
    """Write :func:`encoder_checkpoint` to ``path`` (loadable by ``DashengEncoder(checkpoint=path)``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(encoder_checkpoint(model), path)
    return path
