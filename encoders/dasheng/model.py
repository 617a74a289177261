"""Dasheng audio encoder (Xiaomi, Interspeech 2024) in plain torch, state-dict compatible with ``dasheng`` 0.0.9.

Front-end: 64-band log-mel (512-point STFT, 10 ms hop, 0-8 kHz, HTK mel) in dB with a 120 dB
floor, then a BatchNorm over the mel bands. A (64 x 4) convolution makes one token per 4 frames
(40 ms); learned time and frequency position embeddings; pre-norm ViT blocks; final LayerNorm.
Sequences longer than ``target_length // 4`` tokens (252, 10.08 s) are cut into chunks that are
encoded independently and concatenated, as the reference does.

The reference front-end uses torchaudio's ``AmplitudeToDB``, whose top-dB floor on a ``[B, F, T]``
batch is taken from the loudest clip of the whole batch; ``top_db_scope="batch"`` reproduces that,
the default ``"clip"`` floors every clip at its own maximum so a clip's features do not depend on
its batch-mates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xbench.encoders.frontends import amplitude_to_db, apply_mel, mel_filterbank, power_spectrogram

# Buffers of the reference front-end that its checkpoints carry; HF checkpoints leave them out.
FRONT_END_KEYS = ("front_end.0.spectrogram.window", "front_end.0.mel_scale.fb")


@dataclass(frozen=True)
class DashengConfig:
    """Architecture of a Dasheng encoder (field names follow the reference constructor)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    target_length: int = 1008
    patch_size: tuple[int, int] = (64, 4)
    patch_stride: tuple[int, int] = (64, 4)
    n_mels: int = 64
    n_fft: int = 512
    win_size: int = 512
    hop_size: int = 160
    f_min: float = 0.0
    f_max: float = 8000.0
    center: bool = True
    top_db: float = 120.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_size", tuple(int(v) for v in _pair(self.patch_size)))
        object.__setattr__(self, "patch_stride", tuple(int(v) for v in _pair(self.patch_stride)))
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> DashengConfig:
        """Build from a reference ``config`` dict; keys that do not change the encoder are ignored.

        Options this implementation does not have (a CLS token, LayerScale, other block types) raise.
        """
        unsupported = {
            "pooling": ("mean", None),
            "init_values": (None, 0, 0.0),
            "block_type": ("Block", None),
            "attention_type": ("Attention", None),
            "in_chans": (1, None),
        }
        for key, allowed in unsupported.items():
            if config.get(key) not in allowed:
                raise ValueError(f"Dasheng config {key}={config[key]!r} is not supported (expected {allowed[0]!r})")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["patch_size"], out["patch_stride"] = list(self.patch_size), list(self.patch_stride)
        return out

    @property
    def chunk_tokens(self) -> int:
        """Tokens per independently encoded chunk (252 for the released models)."""
        return self.target_length // self.patch_stride[1]


def _pair(value: Any) -> tuple[Any, Any]:
    if isinstance(value, list | tuple):
        return tuple(value)  # type: ignore[return-value]
    return (value, value)


VARIANTS: dict[str, DashengConfig] = {
    "base": DashengConfig(embed_dim=768, depth=12, num_heads=12),
    "0.6b": DashengConfig(embed_dim=1280, depth=32, num_heads=16),
    "1.2b": DashengConfig(embed_dim=1536, depth=40, num_heads=24),
}
HEADS_BY_WIDTH = {cfg.embed_dim: cfg.num_heads for cfg in VARIANTS.values()}


class _Spectrogram(nn.Module):
    def __init__(self, win_size: int) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(win_size))


class _MelScale(nn.Module):
    def __init__(self, fb: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("fb", fb)


class _MelFrontEnd(nn.Module):
    """Power mel spectrogram whose buffers carry the reference's state-dict names."""

    def __init__(self, cfg: DashengConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.spectrogram = _Spectrogram(cfg.win_size)
        fb = mel_filterbank(cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, 16000)
        self.mel_scale = _MelScale(fb)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        window = self.spectrogram.window
        if cfg.win_size < cfg.n_fft:  # torch.stft centres a short window inside the FFT frame
            left = (cfg.n_fft - cfg.win_size) // 2
            window = F.pad(window, (left, cfg.n_fft - cfg.win_size - left))
        spec = power_spectrogram(wave, cfg.n_fft, cfg.hop_size, window, 2.0, center=cfg.center)
        return apply_mel(spec, self.mel_scale.fb)


class _PatchEmbed(nn.Module):
    def __init__(self, cfg: DashengConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection; ``key_padding_mask`` True = ignore."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        mask = None
        if key_padding_mask is not None:  # the lowest float, as the reference: all-padding rows average all keys
            mask = torch.zeros(key_padding_mask.shape, dtype=q.dtype, device=q.device)
            mask = mask.masked_fill(key_padding_mask, torch.finfo(q.dtype).min)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6, GELU MLP)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_padding_mask)
        return x + self.mlp(self.norm2(x))


class DashengModel(nn.Module):
    """The Dasheng encoder: ``[B, W]`` 16 kHz waveform -> ``[B, (1 + W // 160) // 4, embed_dim]``."""

    def __init__(self, config: DashengConfig | None = None, top_db_scope: str = "clip") -> None:
        super().__init__()
        if top_db_scope not in ("clip", "batch"):
            raise ValueError(f"top_db_scope must be 'clip' or 'batch', got {top_db_scope!r}")
        cfg = config or DashengConfig()
        self.config = cfg
        self.top_db_scope = top_db_scope
        self.front_end = nn.ModuleList([_MelFrontEnd(cfg)])
        self.init_bn = nn.ModuleDict({"1": nn.BatchNorm2d(cfg.n_mels, momentum=0.01)})  # over mel bands
        self.patch_embed = _PatchEmbed(cfg)
        grid = (cfg.n_mels // cfg.patch_stride[0], cfg.target_length // cfg.patch_stride[1])
        self.time_pos_embed = nn.Parameter(torch.randn(1, cfg.embed_dim, 1, grid[1]) * 0.02)
        self.freq_pos_embed = nn.Parameter(torch.randn(1, cfg.embed_dim, grid[0], 1) * 0.02)
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.apply(_init_weights)

    # --- front-end ---------------------------------------------------------------------------------

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """``[B, W] -> [B, n_mels, frames]`` mel power in dB with the top-dB floor (no BatchNorm)."""
        with torch.autocast(wave.device.type, enabled=False):
            mel = self.front_end[0](wave.float())
            return amplitude_to_db(mel, top_db=self.config.top_db, per_example=self.top_db_scope == "clip")

    def normalise(self, db: torch.Tensor) -> torch.Tensor:
        """BatchNorm over mel bands: ``[B, F, T] -> [B, 1, F, T]``."""
        return self.init_bn["1"](db.unsqueeze(1).transpose(1, 2)).transpose(1, 2)

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """The encoder input ``[B, 1, n_mels, frames]`` (log-mel, BatchNorm applied)."""
        return self.normalise(self.log_mel(wave))

    # --- encoder -------------------------------------------------------------------------------------

    def embed(self, spec: torch.Tensor) -> torch.Tensor:
        """Patch tokens with position embeddings, ``[B, 1, F, T] -> [B, D, F', T']`` (T' <= chunk)."""
        x = self.patch_embed(spec)
        return x + self.time_pos_embed[..., : x.shape[-1]] + self.freq_pos_embed

    def encode_tokens(self, tokens: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Transformer blocks and final norm over ``[B, N, D]`` tokens."""
        for block in self.blocks:
            tokens = block(tokens, key_padding_mask)
        return self.norm(tokens)

    def forward_spectrogram(self, spec: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Encode ``[B, 1, F, T]`` chunk by chunk; ``lengths`` (samples) masks padded tokens in attention."""
        x = self.patch_embed(spec)
        chunk = self.config.chunk_tokens
        mask = None
        if lengths is not None:
            valid = (lengths.to(x.device) // (self.config.hop_size * self.config.patch_stride[1])).long()
            mask = torch.arange(x.shape[-1], device=x.device)[None, :] >= valid[:, None]
        outputs = []
        for start in range(0, x.shape[-1], chunk):
            part = x[..., start : start + chunk]
            part = part + self.time_pos_embed[..., : part.shape[-1]] + self.freq_pos_embed
            tokens = part.flatten(2).transpose(1, 2)  # [B, F'T', D], frequency-major like the reference
            part_mask = None if mask is None else mask[:, start : start + chunk]
            outputs.append(self.encode_tokens(tokens, part_mask))
        if not outputs:
            return x.new_zeros(x.shape[0], 0, self.config.embed_dim)
        return torch.cat(outputs, dim=1)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, W]`` waveform -> ``[B, T', embed_dim]`` frame embeddings (40 ms hop)."""
        return self.forward_spectrogram(self.spectrogram(wave), lengths)

    # --- checkpoints ---------------------------------------------------------------------------------

    def load_reference_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a reference (Zenodo) or HF state dict strictly.

        HF keys carry an ``encoder.`` prefix and no front-end buffers: those are taken from this
        module (they are fixed functions of the config). Position embeddings of another length are
        cut or interpolated as the reference does. Any other missing or unexpected key raises.
        """
        sd = dict(state_dict)
        if any(k.startswith("encoder.") for k in sd):
            sd = {k[len("encoder.") :] if k.startswith("encoder.") else k: v for k, v in sd.items()}
        own = self.state_dict()
        for key in FRONT_END_KEYS:
            sd.setdefault(key, own[key])
        for key in ("time_pos_embed", "freq_pos_embed"):
            if key in sd and sd[key].shape != own[key].shape:
                sd[key] = _resize_pos_embed(sd[key], own[key].shape)
        self.load_state_dict(sd, strict=True)


def _resize_pos_embed(table: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Cut a longer position table, or interpolate a shorter one bilinearly (the reference's rule)."""
    target = tuple(shape[-2:])
    if table.shape[-2] >= target[0] and table.shape[-1] >= target[1]:
        return table[..., : target[0], : target[1]].contiguous()
    return F.interpolate(table, size=target, mode="bilinear", align_corners=False)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def parameter_count(config: DashengConfig) -> int:
    """Learned parameters of a :class:`DashengModel` with ``config``, without building it."""
    d, f, t = config.embed_dim, config.n_mels // config.patch_stride[0], config.target_length // config.patch_stride[1]
    hidden = int(d * config.mlp_ratio)
    block = 4 * d + (3 * d * d + (3 * d if config.qkv_bias else 0)) + (d * d + d) + (d * hidden + hidden)
    block += hidden * d + d
    patch = d * config.patch_size[0] * config.patch_size[1] + d
    return 2 * config.n_mels + patch + d * (t + f) + config.depth * block + 2 * d


def infer_config(state_dict: dict[str, torch.Tensor], base: DashengConfig | None = None) -> DashengConfig:
    """Architecture from a state dict's shapes (heads from the released widths, else ``base``)."""
    sd = {k.removeprefix("encoder."): v for k, v in state_dict.items()}
    weight = sd["patch_embed.proj.weight"]
    dim = int(weight.shape[0])
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    heads = HEADS_BY_WIDTH.get(dim, base.num_heads if base else None)
    if heads is None:
        raise ValueError(f"cannot infer the number of heads for width {dim}; pass a config")
    hidden = int(sd["blocks.0.mlp.fc1.weight"].shape[0])
    kwargs = (base or DashengConfig()).to_dict()
    kwargs.update(embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=hidden / dim)
    kwargs.update(patch_size=tuple(weight.shape[-2:]), qkv_bias="blocks.0.attn.qkv.bias" in sd)
    return DashengConfig.from_dict(kwargs)


__all__ = [
    "DashengConfig",
    "DashengModel",
    "VARIANTS",
    "FRONT_END_KEYS",
    "infer_config",
    "parameter_count",
]
