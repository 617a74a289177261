"""BEATs / OpenBEATs audio encoder in plain torch, state-dict compatible with Microsoft's and ESPnet's.

Front-end: 128-bin Kaldi fbank (25 ms / 10 ms, povey window) of the waveform scaled to int16 range,
normalised as ``(fbank - 15.41663) / (2 * 6.55582)``. 16 x 16 patches over (time, frequency) give 8
frequency tokens per 160 ms step (token index ``t * 8 + f``); LayerNorm, a linear projection, a
grouped convolutional position embedding and a post-norm ("deep norm") transformer with gated
relative position bias. There is no absolute position table, so any length runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xbench.encoders.frontends import kaldi_fbank

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582


@dataclass(frozen=True)
class BeatsConfig:
    """Architecture and regularisation settings; defaults are those of Microsoft's ``BEATsConfig``.

    Checkpoint ``cfg`` dicts are applied on top of these defaults, as the reference code does.
    """

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = False
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.0
    dropout_input: float = 0.0
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False
    fbank_mean: float = FBANK_MEAN
    fbank_std: float = FBANK_STD

    def __post_init__(self) -> None:
        if self.activation_fn not in ("gelu", "relu"):
            raise ValueError(f"BEATs activation_fn {self.activation_fn!r} is not supported (gelu, relu)")
        if self.deep_norm and self.layer_norm_first:
            raise ValueError("deep_norm and layer_norm_first cannot both be set")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ValueError("encoder_embed_dim must be divisible by encoder_attention_heads")

    @classmethod
    def from_dict(cls, cfg: dict[str, Any], base: BeatsConfig | None = None) -> BeatsConfig:
        """``base`` (default: Microsoft's defaults) updated with the known keys of ``cfg``."""
        names = {f.name for f in fields(cls)}
        if cfg.get("input_patch_size") == -1:  # Microsoft's "unset" default
            cfg = {**cfg, "input_patch_size": 16}
        return replace(base or cls(), **{k: v for k, v in cfg.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def freq_tokens(self) -> int:
        """Frequency tokens per time step (8 for 128 bins and 16 x 16 patches)."""
        return 128 // self.input_patch_size


_RELEASED = dict(
    deep_norm=True,
    relative_position_embedding=True,
    gru_rel_pos=True,
    max_distance=800,
    dropout=0.0,
    attention_dropout=0.0,
)
VARIANTS: dict[str, BeatsConfig] = {
    "base": BeatsConfig(**_RELEASED),
    "large": BeatsConfig(
        **_RELEASED,
        encoder_layers=24,
        encoder_embed_dim=1024,
        encoder_ffn_embed_dim=4096,
        encoder_attention_heads=16,
    ),
}
HEADS_BY_WIDTH = {768: 12, 1024: 16}


def relative_position_bucket(relative: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5-style bidirectional log buckets of key - query offsets (float32 as in the reference)."""
    half = num_buckets // 2
    buckets = (relative > 0).long() * half
    distance = relative.abs()
    max_exact = half // 2
    scaled = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    large = (max_exact + scaled.long()).clamp(max=half - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class WeightNormConv1d(nn.Module):
    """Grouped Conv1d with weight normalisation over dim 2 (parameters ``weight_g``, ``weight_v``, ``bias``)."""

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.padding, self.groups = kernel // 2, groups
        weight = torch.randn(channels, channels // groups, kernel) * math.sqrt(4.0 / (kernel * channels))
        self.weight_g = nn.Parameter(weight.pow(2).sum(dim=(0, 1), keepdim=True).sqrt())
        self.weight_v = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch._weight_norm(self.weight_v, self.weight_g, 2)  # what nn.utils.weight_norm computes
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class MultiheadAttention(nn.Module):
    """Self-attention with an optional gated relative position bias (``grep_*``)."""

    def __init__(self, cfg: BeatsConfig, dim: int, heads: int, has_bias_table: bool) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.dropout = cfg.attention_dropout
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.gru_rel_pos = cfg.gru_rel_pos
        if has_bias_table:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, heads)
        if cfg.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def forward(
        self,
        x: torch.Tensor,
        position_bias: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # The reference's order of operations (queries scaled by 1/(sqrt(d) * 32), logits shifted by
        # their row maximum and scaled back by 32 before the bias is added): it keeps fp16 in range
        # and keeps this module within float32 rounding of the reference even at 24 layers.
        b, n, d = x.shape
        alpha = 32.0
        q = self.q_proj(x) * self.head_dim**-0.5 * (1.0 / alpha)
        q = q.view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        logits = q @ k.transpose(-1, -2)
        logits = (logits - logits.amax(dim=-1, keepdim=True)) * alpha
        if key_padding_mask is not None:
            logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        if position_bias is not None:
            bias = position_bias.unsqueeze(0)
            if self.gru_rel_pos:
                raw_q = q * alpha / self.head_dim**-0.5
                gates = torch.sigmoid(self.grep_linear(raw_q).view(b, self.heads, n, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias
            logits = logits + bias
        probs = F.dropout(torch.softmax(logits, dim=-1), self.dropout, self.training)
        return self.out_proj((probs @ v).transpose(1, 2).reshape(b, n, d))


class EncoderLayer(nn.Module):
    """Transformer layer: post-norm with deep-norm residual scaling, or pre-norm (``layer_norm_first``)."""

    def __init__(self, cfg: BeatsConfig, dim: int, ffn: int, heads: int, depth: int, has_bias_table: bool) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(cfg, dim, heads, has_bias_table)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = cfg.layer_norm_first
        self.alpha = math.pow(2.0 * depth, 0.25) if cfg.deep_norm else 1.0
        self.act = F.gelu if cfg.activation_fn == "gelu" else F.relu
        self.dropout, self.activation_dropout = cfg.dropout, cfg.activation_dropout

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(self.act(self.fc1(x)), self.activation_dropout, self.training)
        return F.dropout(self.fc2(x), self.dropout, self.training)

    def forward(
        self,
        x: torch.Tensor,
        position_bias: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.layer_norm_first:
            attn = self.self_attn(self.self_attn_layer_norm(x), position_bias, key_padding_mask)
            x = x + F.dropout(attn, self.dropout, self.training)
            return x + self._ffn(self.final_layer_norm(x))
        attn = self.self_attn(x, position_bias, key_padding_mask)
        x = self.self_attn_layer_norm(x * self.alpha + F.dropout(attn, self.dropout, self.training))
        return self.final_layer_norm(x * self.alpha + self._ffn(x))


class TransformerEncoder(nn.Module):
    """Convolutional position embedding + layers; the bias table is shared by every layer."""

    def __init__(self, cfg: BeatsConfig, dim: int, ffn: int, heads: int, depth: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.pos_conv = nn.Sequential(WeightNormConv1d(dim, cfg.conv_pos, cfg.conv_pos_groups))
        rel = cfg.relative_position_embedding
        self.layers = nn.ModuleList(EncoderLayer(cfg, dim, ffn, heads, depth, rel and i == 0) for i in range(depth))
        if rel:
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(dim)
        self.layerdrop = cfg.encoder_layerdrop

    def position_bias(self, length: int, device: torch.device) -> torch.Tensor | None:
        """``[heads, L, L]`` relative position bias (before the per-layer gate), or None."""
        if not self.cfg.relative_position_embedding:
            return None
        pos = torch.arange(length, device=device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None], self.cfg.num_buckets, self.cfg.max_distance)
        return self.layers[0].self_attn.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        num_layers: int | None = None,
    ) -> torch.Tensor:
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        conv = self.pos_conv(x.transpose(1, 2))
        if self.cfg.conv_pos % 2 == 0:  # "same" padding of an even kernel leaves one extra step
            conv = conv[..., :-1]
        x = x + F.gelu(conv).transpose(1, 2)
        if not self.cfg.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, self.cfg.dropout, self.training)
        bias = self.position_bias(x.shape[1], x.device)
        for layer in self.layers[:num_layers]:
            if self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop:
                continue
            x = layer(x, bias, padding_mask)
        if self.cfg.layer_norm_first and num_layers is None:
            x = self.layer_norm(x)
        return x


class BeatsModel(nn.Module):
    """The BEATs encoder: ``[B, W]`` 16 kHz waveform -> ``[B, (frames // 16) * 8, D]`` patch tokens.

    ``min_samples``: shorter inputs are repeated up to this length first, as ESPnet/OpenBEATs do
    (3200 samples); 0 disables it (then inputs under ~2800 samples give no token).
    """

    def __init__(self, config: BeatsConfig | None = None, min_samples: int = 3200) -> None:
        super().__init__()
        cfg = config or VARIANTS["base"]
        self.config = cfg
        self.min_samples = min_samples
        dim = cfg.encoder_embed_dim
        self.post_extract_proj = nn.Linear(cfg.embed_dim, dim) if cfg.embed_dim != dim else None
        p = cfg.input_patch_size
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, kernel_size=p, stride=p, bias=cfg.conv_bias)
        self.encoder = TransformerEncoder(
            cfg, dim, cfg.encoder_ffn_embed_dim, cfg.encoder_attention_heads, cfg.encoder_layers
        )
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference initialisation (BERT-style normal(0.02), deep-norm scaled projections)."""
        cfg = self.config
        for module in self.encoder.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        if cfg.deep_norm:
            beta = math.pow(8.0 * cfg.encoder_layers, -0.25)
            for layer in self.encoder.layers:
                attn = layer.self_attn
                for lin, gain in ((attn.k_proj, 1.0), (attn.v_proj, beta), (attn.q_proj, 1.0)):
                    nn.init.xavier_normal_(lin.weight, gain=gain)
                for lin in (attn.out_proj, layer.fc1, layer.fc2):
                    nn.init.xavier_normal_(lin.weight, gain=beta)
        if self.post_extract_proj is not None:
            nn.init.xavier_normal_(self.post_extract_proj.weight)
            nn.init.zeros_(self.post_extract_proj.bias)
        nn.init.xavier_normal_(self.patch_embedding.weight)

    def fbank(self, wave: torch.Tensor) -> torch.Tensor:
        """``[B, W]`` in [-1, 1] -> normalised ``[B, frames, 128]`` Kaldi fbank."""
        if self.min_samples and 0 < wave.shape[-1] < self.min_samples:
            wave = wave.repeat(1, self.min_samples // wave.shape[-1] + 1)
        with torch.autocast(wave.device.type, enabled=False):
            fbank = kaldi_fbank(wave.float() * 2**15, 128, sample_frequency=16000, frame_length=25, frame_shift=10)
        return (fbank - self.config.fbank_mean) / (2 * self.config.fbank_std)

    def patches(self, fbank: torch.Tensor) -> torch.Tensor:
        """``[B, frames, 128] -> [B, (frames // 16) * 8, embed_dim]`` patch embeddings (time-major)."""
        x = self.patch_embedding(fbank.unsqueeze(1))
        return x.flatten(2).transpose(1, 2)

    def encode_patches(
        self, patches: torch.Tensor, padding_mask: torch.Tensor | None = None, num_layers: int | None = None
    ) -> torch.Tensor:
        """LayerNorm, projection and transformer over ``[B, N, embed_dim]`` patch embeddings."""
        x = self.layer_norm(patches)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        x = F.dropout(x, self.config.dropout_input, self.training)
        return self.encoder(x, padding_mask, num_layers)

    def forward(self, wave: torch.Tensor, num_layers: int | None = None) -> torch.Tensor:
        """``[B, W]`` -> ``[B, N, D]`` tokens, 8 frequency tokens per 160 ms step."""
        return self.encode_patches(self.patches(self.fbank(wave)), num_layers=num_layers)

    def load_reference_state_dict(self, state_dict: dict[str, torch.Tensor]) -> list[str]:
        """Load Microsoft, OpenBEATs or ESPnet weights strictly; returns the keys deliberately dropped.

        ESPnet models nest the encoder under ``encoder.`` (stripped; their head is dropped);
        ESPnet's frozen ``*_pad*`` helper convolutions and Microsoft's fine-tuned ``predictor.*``
        head are dropped; a checkpoint holding the shared bias table only under layer 0 is
        completed. Any other missing or unexpected key raises.
        """
        sd, dropped = normalise_state_dict(state_dict)
        table = "encoder.layers.{}.self_attn.relative_attention_bias.weight"
        if self.config.relative_position_embedding and table.format(0) in sd:
            for i in range(1, self.config.encoder_layers):
                sd.setdefault(table.format(i), sd[table.format(0)])
        self.load_state_dict(sd, strict=True)
        return dropped


def normalise_state_dict(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Encoder keys in Microsoft's naming, and the keys that were dropped (heads, ESPnet pad convs)."""
    sd = dict(state_dict)
    dropped: list[str] = []
    if "patch_embedding.weight" not in sd and "encoder.patch_embedding.weight" in sd:  # ESPnet model
        dropped += [k for k in sd if not k.startswith("encoder.")]
        sd = {k[len("encoder.") :]: v for k, v in sd.items() if k.startswith("encoder.")}
    for key in list(sd):
        if "_pad" in key.split(".")[0] or key.startswith("predictor."):
            dropped.append(key)
            del sd[key]
    return sd, dropped


def infer_config(state_dict: dict[str, torch.Tensor], base: BeatsConfig | None = None) -> BeatsConfig:
    """Architecture from a state dict's shapes; what shapes cannot tell (deep norm, max distance) from ``base``."""
    sd, _ = normalise_state_dict(state_dict)
    patch = sd["patch_embedding.weight"]
    dim = int(sd["post_extract_proj.weight"].shape[0]) if "post_extract_proj.weight" in sd else int(patch.shape[0])
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.layers."))
    table = sd.get("encoder.layers.0.self_attn.relative_attention_bias.weight")
    grep = sd.get("encoder.layers.0.self_attn.grep_a")
    heads = int(table.shape[1]) if table is not None else int(grep.shape[1]) if grep is not None else None
    heads = heads or HEADS_BY_WIDTH.get(dim) or (base.encoder_attention_heads if base else None)
    if heads is None:
        raise ValueError(f"cannot infer the number of heads for width {dim}; pass a config")
    conv = sd["encoder.pos_conv.0.weight_v"]
    start = base or VARIANTS["large" if dim == 1024 else "base"]
    return replace(
        start,
        input_patch_size=int(patch.shape[-1]),
        embed_dim=int(patch.shape[0]),
        conv_bias="patch_embedding.bias" in sd,
        encoder_layers=layers,
        encoder_embed_dim=dim,
        encoder_ffn_embed_dim=int(sd["encoder.layers.0.fc1.weight"].shape[0]),
        encoder_attention_heads=heads,
        conv_pos=int(conv.shape[-1]),
        conv_pos_groups=dim // int(conv.shape[1]),
        relative_position_embedding=table is not None,
        num_buckets=int(table.shape[0]) if table is not None else start.num_buckets,
        gru_rel_pos=grep is not None,
    )


def pool_frequency_tokens(tokens: torch.Tensor, freq_tokens: int = 8, mode: str = "mean") -> torch.Tensor:
    """``[B, T * F, D] -> [B, T, D]`` (mean of the F frequency tokens) or ``[B, T, F * D]`` (``"concat"``)."""
    b, n, d = tokens.shape
    steps = tokens.reshape(b, n // freq_tokens, freq_tokens, d)
    if mode == "mean":
        return steps.mean(dim=2)
    if mode == "concat":
        return steps.reshape(b, n // freq_tokens, freq_tokens * d)
    raise ValueError(f"token pooling must be 'mean' or 'concat', got {mode!r}")


def parameter_count(config: BeatsConfig) -> int:
    """Learned parameters of a :class:`BeatsModel` with ``config`` (the shared bias table counted once)."""
    with torch.device("meta"):
        model = BeatsModel(config)
    return sum(p.numel() for p in model.parameters())
