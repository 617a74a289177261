"""Zipformer2 audio encoder (icefall / Auden) in plain torch, state-dict compatible with Auden checkpoints.

The network is the non-causal Zipformer2 of icefall as configured by Auden's ``ZipformerConfig``: a
``Conv2dSubsampling`` front (80-bin fbank -> ``encoder_dim[0]`` at ~50 Hz) followed by stacks of
Zipformer layers that run at their own frame rates (``downsampling_factor`` per stack) and a final
x2 downsampling, so 1000 fbank frames (10 s) give 248 output frames of ``max(encoder_dim)``.

Module and parameter names follow Auden's ``ZipformerEncoderModel`` (``encoder_embed.*``,
``encoder.encoders.{i}.*``, ``encoder.downsample_output.bias``, buffer ``model_batch_count``), so an
Auden state dict loads with ``strict=True``. The forward pass equals Auden's in eval mode.

Simplifications (Auden's ``scaling.py`` machinery that only shapes training):

* SwooshL / SwooshR in closed form (``log(1 + e^(x-4)) - 0.08x - 0.035`` and
  ``log(1 + e^(x-1)) - 0.08x - 0.313261687``) with ordinary autograd; no k2, no uint8 derivatives.
* ``Balancer``, ``Whiten``, ``ScaleGrad`` and ``limit_param_value`` are identities in the forward pass
  and only edit gradients: they are left out (their slots in ``encoder_embed.conv`` are kept as
  ``nn.Identity`` so the indices ``conv.0/4/7`` match).
* ``ScheduledFloat`` schedules are replaced by constants: in training, plain dropout at the schedules'
  final rates (feed-forward and front-end dropout 0.1, positional-encoding dropout 0.15); layer
  skipping, bypass-scale limits, per-frame feature masks, constant-attention and pos-emb skipping
  are not used. ``model_batch_count`` is kept as a buffer for checkpoint compatibility only.
* Causal (chunked streaming) mode is not implemented; configs with ``causal=True`` are rejected.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------

_PER_STACK = (
    "num_encoder_layers",
    "encoder_dim",
    "feedforward_dim",
    "num_heads",
    "encoder_unmasked_dim",
    "cnn_module_kernel",
    "query_head_dim",
    "value_head_dim",
    "pos_head_dim",
)


@dataclass
class ZipformerConfig:
    """Auden ``ZipformerConfig`` fields (defaults: Auden's default, here called Zipformer-M)."""

    feature_dim: int = 80
    output_downsampling_factor: int = 2
    num_encoder_layers: list[int] = field(default_factory=lambda: [2, 2, 3, 4, 3, 2])
    downsampling_factor: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 4, 2])
    encoder_dim: list[int] = field(default_factory=lambda: [192, 256, 384, 512, 384, 256])
    feedforward_dim: list[int] = field(default_factory=lambda: [576, 768, 1152, 1536, 1152, 768])
    num_heads: list[int] = field(default_factory=lambda: [4, 4, 4, 8, 4, 4])
    query_head_dim: list[int] = field(default_factory=lambda: [32])
    value_head_dim: list[int] = field(default_factory=lambda: [12])
    pos_head_dim: list[int] = field(default_factory=lambda: [4])
    pos_dim: int = 48
    encoder_unmasked_dim: list[int] = field(default_factory=lambda: [192, 192, 256, 256, 256, 192])
    cnn_module_kernel: list[int] = field(default_factory=lambda: [31, 31, 15, 15, 15, 31])
    causal: bool = False
    warmup_batches: float = 4000.0
    dropout: float | None = None
    chunk_size: list[int] = field(default_factory=lambda: [16, 32, 64, -1])
    left_context_frames: list[int] = field(default_factory=lambda: [64, 128, 256, -1])

    def __post_init__(self) -> None:
        stacks = len(self.downsampling_factor)
        for name in _PER_STACK:
            value = getattr(self, name)
            value = [value] if isinstance(value, int) else list(value)
            if len(value) == 1:
                value = value * stacks
            if len(value) != stacks:
                raise ValueError(f"ZipformerConfig.{name} has {len(value)} entries, expected {stacks} (one per stack)")
            setattr(self, name, [int(v) for v in value])
        if self.causal:
            raise ValueError("causal (streaming) Zipformer checkpoints are not supported")
        if self.output_downsampling_factor != 2:
            raise ValueError("output_downsampling_factor must be 2 (as in icefall's Zipformer2)")
        for unmasked, dim in zip(self.encoder_unmasked_dim, self.encoder_dim, strict=True):
            if unmasked > dim:
                raise ValueError(f"encoder_unmasked_dim {unmasked} exceeds encoder_dim {dim}")

    @property
    def output_dim(self) -> int:
        return max(self.encoder_dim)

    def to_dict(self) -> dict[str, Any]:
        """Auden's ``config.json`` content for a bare encoder (``model_type`` ``zipformer``)."""
        return {"model_type": "zipformer", **asdict(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ZipformerConfig:
        """Build from an Auden config dict; unknown keys (``model_type``, future fields) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


ZIPFORMER_M = ZipformerConfig()
ZIPFORMER_L = ZipformerConfig(
    encoder_dim=[192, 256, 512, 768, 512, 256],
    feedforward_dim=[576, 768, 1536, 2304, 1536, 768],
    num_encoder_layers=[2, 2, 4, 5, 4, 2],
)


def output_frames(num_fbank_frames: int) -> int:
    """Encoder frames for ``num_fbank_frames`` input frames: ``((T - 7) // 2 + 1) // 2``."""
    return ((num_fbank_frames - 7) // 2 + 1) // 2


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


def swoosh_l(x: torch.Tensor) -> torch.Tensor:
    """SwooshL: ``log(1 + exp(x - 4)) - 0.08 x - 0.035``."""
    return torch.logaddexp(torch.zeros_like(x), x - 4.0) - 0.08 * x - 0.035


def swoosh_r(x: torch.Tensor) -> torch.Tensor:
    """SwooshR: ``log(1 + exp(x - 1)) - 0.08 x - 0.313261687``."""
    return torch.logaddexp(torch.zeros_like(x), x - 1.0) - 0.08 * x - 0.313261687


class SwooshR(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swoosh_r(x)


def _scaled_init(layer: nn.Linear | nn.Conv1d | nn.Conv2d, scale: float) -> None:
    """icefall's ``Scaled*`` constructors: weight times ``scale``, bias uniform in +-0.1 * scale."""
    with torch.no_grad():
        layer.weight.mul_(scale)
        if layer.bias is not None:
            nn.init.uniform_(layer.bias, -0.1 * scale, 0.1 * scale)


class ActivationLinear(nn.Linear):
    """Swoosh activation, optional dropout (mask shared over time), then a linear layer.

    Same parameters (``weight``, ``bias``) as icefall's ``ActivationDropoutAndLinear``.
    """

    def __init__(self, dim_in: int, dim_out: int, activation: str, dropout: float, initial_scale: float) -> None:
        super().__init__(dim_in, dim_out)
        _scaled_init(self, initial_scale)
        self.activation = swoosh_l if activation == "SwooshL" else swoosh_r
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, C]
        x = self.activation(x)
        if self.training and self.dropout > 0:
            keep = torch.rand(x.shape[0], 1, x.shape[2], device=x.device) > self.dropout
            x = x * keep.to(x.dtype) / (1.0 - self.dropout)
        return super().forward(x)


class BiasNorm(nn.Module):
    """``x * mean((x - bias)^2) ** -0.5 * exp(log_scale)`` over the channel dimension."""

    def __init__(self, num_channels: int, channel_dim: int = -1) -> None:
        super().__init__()
        self.channel_dim = channel_dim
        self.log_scale = nn.Parameter(torch.tensor(1.0))
        self.bias = nn.Parameter(torch.empty(num_channels).normal_(mean=0.0, std=1e-4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = self.channel_dim % x.ndim
        bias = self.bias.reshape((-1,) + (1,) * (x.ndim - dim - 1))
        scales = (x - bias).pow(2).mean(dim=dim, keepdim=True).pow(-0.5) * self.log_scale.exp()
        return x * scales


class ConvNeXt(nn.Module):
    """The single ConvNeXt block of the subsampling front-end, on ``[B, C, T, F]``."""

    def __init__(self, channels: int, hidden_ratio: int = 3, kernel_size: tuple[int, int] = (7, 7)) -> None:
        super().__init__()
        padding = ((kernel_size[0] - 1) // 2, (kernel_size[1] - 1) // 2)
        hidden = channels * hidden_ratio
        self.depthwise_conv = nn.Conv2d(channels, channels, kernel_size, groups=channels, padding=padding)
        self.pointwise_conv1 = nn.Conv2d(channels, hidden, 1)
        self.pointwise_conv2 = nn.Conv2d(hidden, channels, 1)
        _scaled_init(self.pointwise_conv2, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise_conv2(swoosh_l(self.pointwise_conv1(self.depthwise_conv(x))))
        return x + y


class Conv2dSubsampling(nn.Module):
    """``[B, T, F]`` fbank -> ``[B, (T - 7) // 2, out_channels]`` (convolutions, ConvNeXt, Linear, BiasNorm)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.1) -> None:
        super().__init__()
        if in_channels < 7:
            raise ValueError("Conv2dSubsampling needs at least 7 input features")
        # Indices follow icefall: 0 conv, 1 ScaleGrad, 2 Balancer, 3 SwooshR, 4 conv, 5 Balancer, ...
        self.conv = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=3, padding=(0, 1)),
            nn.Identity(),
            nn.Identity(),
            SwooshR(),
            nn.Conv2d(8, 32, kernel_size=3, stride=2),
            nn.Identity(),
            SwooshR(),
            nn.Conv2d(32, 128, kernel_size=3, stride=(1, 2)),
            nn.Identity(),
            SwooshR(),
        )
        self.convnext = ConvNeXt(128)
        self.out_width = (((in_channels - 1) // 2) - 1) // 2
        self.out = nn.Linear(self.out_width * 128, out_channels)
        self.out_norm = BiasNorm(out_channels)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convnext(self.conv(x.unsqueeze(1)))  # [B, 128, T', F']
        b, c, t, f = x.shape
        x = self.out_norm(self.out(x.transpose(1, 2).reshape(b, t, c * f)))
        if self.training and self.dropout > 0:  # icefall's Dropout3: one mask per clip and channel
            keep = torch.rand(b, 1, x.shape[-1], device=x.device) > self.dropout
            x = x * keep.to(x.dtype) / (1.0 - self.dropout)
        return x


def relative_position_encoding(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """icefall's ``CompactRelPositionalEncoding`` for offsets ``-(length-1) .. length-1``: ``[2L-1, dim]``.

    Offsets are log-compressed, mapped through ``atan`` to a finite interval and Fourier-encoded; the
    last channel is a constant 1 (a bias).
    """
    offsets = torch.arange(-(length - 1), length, device=device, dtype=torch.float32).unsqueeze(1)
    freqs = 1 + torch.arange(dim // 2, device=device)
    compression = dim**0.5
    compressed = compression * offsets.sign() * ((offsets.abs() + compression).log() - math.log(compression))
    angle = (compressed / (dim / (2.0 * math.pi))).atan()
    pe = torch.zeros(offsets.shape[0], dim, device=device)
    pe[:, 0::2] = (angle * freqs).cos()
    pe[:, 1::2] = (angle * freqs).sin()
    pe[:, -1] = 1.0
    return pe


class RelPositionAttentionWeights(nn.Module):
    """Multi-head attention weights with relative-position scores: ``[B, T, C] -> [H, B, T, T]``."""

    def __init__(self, dim: int, pos_dim: int, num_heads: int, query_head_dim: int, pos_head_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query_head_dim = query_head_dim
        self.pos_head_dim = pos_head_dim
        self.in_proj = nn.Linear(dim, (2 * query_head_dim + pos_head_dim) * num_heads)
        _scaled_init(self.in_proj, query_head_dim**-0.25)
        self.linear_pos = nn.Linear(pos_dim, num_heads * pos_head_dim, bias=False)
        _scaled_init(self.linear_pos, 0.05)

    def forward(
        self, x: torch.Tensor, pos_emb: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, t, _ = x.shape
        h, qd, pd = self.num_heads, self.query_head_dim, self.pos_head_dim
        proj = self.in_proj(x)
        q = proj[..., : qd * h].reshape(b, t, h, qd).permute(2, 0, 1, 3)  # [H, B, T, qd]
        k = proj[..., qd * h : 2 * qd * h].reshape(b, t, h, qd).permute(2, 0, 3, 1)  # [H, B, qd, T]
        p = proj[..., 2 * qd * h :].reshape(b, t, h, pd).permute(2, 0, 1, 3)  # [H, B, T, pd]
        scores = torch.matmul(q, k)
        pos = self.linear_pos(pos_emb).reshape(2 * t - 1, h, pd).permute(1, 2, 0).unsqueeze(1)  # [H, 1, pd, 2T-1]
        rel = torch.matmul(p, pos).contiguous()  # [H, B, T, 2T-1]: column j is offset j - (T - 1)
        # score[t1, t2] = rel[t1, (T - 1) - t1 + t2], i.e. the relative offset t2 - t1
        s0, s1, s2, s3 = rel.stride()
        offset = rel.storage_offset() + s3 * (t - 1)
        scores = scores + rel.as_strided((h, b, t, t), (s0, s1, s2 - s3, s3), storage_offset=offset)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[None, :, None, :], -1000.0)
        return scores.softmax(dim=-1)


class SelfAttention(nn.Module):
    """Values weighted by precomputed attention weights."""

    def __init__(self, dim: int, num_heads: int, value_head_dim: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, num_heads * value_head_dim)
        self.out_proj = nn.Linear(num_heads * value_head_dim, dim)
        _scaled_init(self.out_proj, 0.05)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        h = weights.shape[0]
        b, t, _ = x.shape
        v = self.in_proj(x).reshape(b, t, h, -1).permute(2, 0, 1, 3)  # [H, B, T, vd]
        out = torch.matmul(weights, v).permute(1, 2, 0, 3).reshape(b, t, -1)
        return self.out_proj(out)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, hidden)
        self.out_proj = ActivationLinear(hidden, dim, "SwooshL", dropout, initial_scale=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.in_proj(x))


class NonlinAttention(nn.Module):
    """Gated values mixed over time with the first head's attention weights."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.in_proj = nn.Linear(dim, 3 * hidden)
        self.out_proj = nn.Linear(hidden, dim)
        _scaled_init(self.out_proj, 0.05)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        s, v, y = self.in_proj(x).chunk(3, dim=-1)
        v = v * s.tanh()
        b, t, _ = v.shape
        h = weights.shape[0]
        v = v.reshape(b, t, h, -1).permute(2, 0, 1, 3)
        v = torch.matmul(weights, v).permute(1, 2, 0, 3).reshape(b, t, -1)
        return self.out_proj(v * y)


class ConvolutionModule(nn.Module):
    """GLU, depthwise 1-D convolution (padding masked to zero), SwooshR, linear."""

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("cnn_module_kernel must be odd")
        self.in_proj = nn.Linear(dim, 2 * dim)
        self.depthwise_conv = nn.Conv1d(dim, dim, kernel_size, groups=dim, padding=kernel_size // 2)
        self.out_proj = ActivationLinear(dim, dim, "SwooshR", 0.0, initial_scale=0.05)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x, gate = self.in_proj(x).chunk(2, dim=-1)
        x = (x * gate.sigmoid()).transpose(1, 2)  # [B, C, T]
        if key_padding_mask is not None:
            x = x.masked_fill(key_padding_mask.unsqueeze(1), 0.0)
        return self.out_proj(self.depthwise_conv(x).transpose(1, 2))


class Bypass(nn.Module):
    """``orig + (new - orig) * bypass_scale`` with a learned per-channel scale."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bypass_scale = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, orig: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        return orig + (new - orig) * self.bypass_scale


class ZipformerLayer(nn.Module):
    """One Zipformer2 layer: three feed-forwards, non-linear attention, two attentions, two convolutions."""

    def __init__(self, cfg: ZipformerConfig, i: int, dropout: float) -> None:
        super().__init__()
        dim, ffn, heads = cfg.encoder_dim[i], cfg.feedforward_dim[i], cfg.num_heads[i]
        self.bypass = Bypass(dim)
        self.bypass_mid = Bypass(dim)
        self.self_attn_weights = RelPositionAttentionWeights(
            dim, cfg.pos_dim, heads, cfg.query_head_dim[i], cfg.pos_head_dim[i]
        )
        self.self_attn1 = SelfAttention(dim, heads, cfg.value_head_dim[i])
        self.self_attn2 = SelfAttention(dim, heads, cfg.value_head_dim[i])
        self.feed_forward1 = FeedForward(dim, (ffn * 3) // 4, dropout)
        self.feed_forward2 = FeedForward(dim, ffn, dropout)
        self.feed_forward3 = FeedForward(dim, (ffn * 5) // 4, dropout)
        self.nonlin_attention = NonlinAttention(dim, 3 * dim // 4)
        self.conv_module1 = ConvolutionModule(dim, cfg.cnn_module_kernel[i])
        self.conv_module2 = ConvolutionModule(dim, cfg.cnn_module_kernel[i])
        self.bypass_scale = nn.Parameter(torch.full((dim,), 0.5))  # unused, kept for checkpoint keys
        self.norm = BiasNorm(dim)

    def forward(self, src: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        orig = src
        weights = self.self_attn_weights(src, pos_emb, mask)
        src = src + self.feed_forward1(src)
        src = src + self.nonlin_attention(src, weights[0:1])
        src = src + self.self_attn1(src, weights)
        src = src + self.conv_module1(src, mask)
        src = src + self.feed_forward2(src)
        src = self.bypass_mid(orig, src)
        src = src + self.self_attn2(src, weights)
        src = src + self.conv_module2(src, mask)
        src = src + self.feed_forward3(src)
        return self.bypass(orig, self.norm(src))


class ZipformerStack(nn.Module):
    """Layers sharing one frame rate (icefall's ``Zipformer2Encoder``)."""

    def __init__(self, cfg: ZipformerConfig, i: int, dropout: float, pos_dropout: float = 0.15) -> None:
        super().__init__()
        self.pos_dim = cfg.pos_dim
        self.pos_dropout = pos_dropout
        self.layers = nn.ModuleList(ZipformerLayer(cfg, i, dropout) for _ in range(cfg.num_encoder_layers[i]))

    def forward(self, src: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        pos_emb = relative_position_encoding(src.shape[1], self.pos_dim, src.device).to(src.dtype)
        pos_emb = F.dropout(pos_emb, self.pos_dropout, self.training)
        for layer in self.layers:
            src = layer(src, pos_emb, mask)
        return src


class SimpleDownsample(nn.Module):
    """Softmax-weighted sum of ``factor`` consecutive frames (the last frame repeated to fill)."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.bias = nn.Parameter(torch.zeros(factor))

    def forward(self, src: torch.Tensor) -> torch.Tensor:  # [B, T, C] -> [B, ceil(T / factor), C]
        b, t, c = src.shape
        out_len = (t + self.factor - 1) // self.factor
        pad = out_len * self.factor - t
        if pad:
            src = torch.cat((src, src[:, -1:].expand(b, pad, c)), dim=1)
        weights = self.bias.softmax(dim=0).reshape(1, 1, self.factor, 1)
        return (src.reshape(b, out_len, self.factor, c) * weights).sum(dim=2)


class DownsampledStack(nn.Module):
    """A stack run at ``1 / factor`` of the frame rate, repeated back up and combined with its input."""

    def __init__(self, encoder: ZipformerStack, dim: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.downsample = SimpleDownsample(factor)
        self.encoder = encoder
        self.out_combiner = Bypass(dim)

    def forward(self, src: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = self.encoder(self.downsample(src), mask)
        out = out.repeat_interleave(self.factor, dim=1)[:, : src.shape[1]]
        return self.out_combiner(src, out)


class Zipformer2(nn.Module):
    """The stacks and the output downsampling (icefall's ``Zipformer2``, non-causal)."""

    def __init__(self, cfg: ZipformerConfig, dropout: float = 0.1) -> None:
        super().__init__()
        self.cfg = cfg
        stacks: list[nn.Module] = []
        for i, factor in enumerate(cfg.downsampling_factor):
            stack = ZipformerStack(cfg, i, dropout)
            stacks.append(stack if factor == 1 else DownsampledStack(stack, cfg.encoder_dim[i], factor))
        self.encoders = nn.ModuleList(stacks)
        self.downsample_output = SimpleDownsample(cfg.output_downsampling_factor)

    @staticmethod
    def _channels(x: torch.Tensor, dim: int) -> torch.Tensor:
        if dim <= x.shape[-1]:
            return x[..., :dim]
        return F.pad(x, (0, dim - x.shape[-1]))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        outputs = []
        for i, module in enumerate(self.encoders):
            factor = self.cfg.downsampling_factor[i]
            x = module(self._channels(x, self.cfg.encoder_dim[i]), None if mask is None else mask[:, ::factor])
            outputs.append(x)
        # Full-width output: each channel from the latest stack that has it.
        pieces, width = [outputs[-1]], self.cfg.encoder_dim[-1]
        for i in range(len(outputs) - 2, -1, -1):
            dim = self.cfg.encoder_dim[i]
            if dim > width:
                pieces.append(outputs[i][..., width:dim])
                width = dim
        return self.downsample_output(torch.cat(pieces, dim=-1))


def make_pad_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B, max_len]`` bool mask, True at padded positions."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


class ZipformerModel(nn.Module):
    """Fbank ``[B, T, 80]`` (+ lengths) -> ``[B, ((T - 7) // 2 + 1) // 2, max(encoder_dim)]``.

    State-dict compatible with Auden's ``ZipformerEncoderModel``; an absent ``model_batch_count``
    is inserted (100000, as Auden does for old checkpoints) when loading.
    """

    def __init__(self, config: ZipformerConfig | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        self.config = config or ZipformerConfig()
        self.encoder_embed = Conv2dSubsampling(self.config.feature_dim, self.config.encoder_dim[0], dropout)
        self.encoder = Zipformer2(self.config, dropout)
        self.register_buffer("model_batch_count", torch.tensor(0.0), persistent=True)

    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        key = prefix + "model_batch_count"
        if key not in state_dict:
            state_dict[key] = torch.tensor(100000.0)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder frames ``[B, T', D]`` and their valid lengths ``[B]`` (``lengths=None``: all frames valid)."""
        if features.shape[1] < 9:
            raise ValueError(f"Zipformer needs at least 9 fbank frames, got {features.shape[1]}")
        if lengths is None:
            lengths = torch.full((features.shape[0],), features.shape[1], device=features.device)
        x = self.encoder_embed(features)
        lengths = (lengths - 7) // 2
        mask = make_pad_mask(lengths, x.shape[1]) if bool((lengths < x.shape[1]).any()) else None
        return self.encoder(x, mask), (lengths + 1) // 2


def parameter_count(config: ZipformerConfig | None = None) -> int:
    """Parameters of a :class:`ZipformerModel` built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = ZipformerModel(config)
    return sum(p.numel() for p in model.parameters())
