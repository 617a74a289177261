"""The Whisper encoder as an X-ARES encoder, at its true 20 ms hop and trimmed to the input's length.

X-ARES's whisper example declares ``hop_size_in_ms = 10`` (the feature extractor's hop) although the
encoder's second convolution halves the rate to 20 ms, and it returns all 1500 frames of the 30 s the
feature extractor pads every input to (``example/whisper/whisper_encoder.py``). Here the log-mel is computed like
``WhisperFeatureExtractor`` in plain torch (80 bins, n_fft 400, hop 160, Slaney mel filters, power
spectrum without the last frame, ``log10`` clamped at 1e-10, floor at max - 8, ``(x + 4) / 4``, per
clip), the encoder runs on the padded 30 s, and only the ``ceil(samples / 320)`` frames that cover
the real input are kept. Inputs longer than 30 s are encoded in 30 s chunks and concatenated.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, PreTrainedModel, WhisperConfig, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from xbench.encoders.frontends import mel_filterbank
from xbench.encoders.hf import MODELS, env_name
from xbench.encoders.hf.encoder import reference_config, resolve_model_folder
from xbench.encoders.hf.layers import Layer, check_layer, config_digest, parse_layer, select_hidden
from xbench.encoders.weights import seeded, use_pretrained

log = logging.getLogger(__name__)

N_FFT = 400
HOP_LENGTH = 160
CHUNK_SECONDS = 30
SAMPLING_RATE = 16000
N_SAMPLES = CHUNK_SECONDS * SAMPLING_RATE  # 480000
SAMPLES_PER_FRAME = 2 * HOP_LENGTH  # the encoder's stride-2 convolution: 20 ms


def whisper_mel_filters(n_mels: int = 80) -> torch.Tensor:
    """Slaney-scale, Slaney-normalised mel filters ``[n_fft // 2 + 1, n_mels]`` over 0-8 kHz."""
    return mel_filterbank(
        N_FFT // 2 + 1, 0.0, SAMPLING_RATE / 2, n_mels, SAMPLING_RATE, norm="slaney", mel_scale="slaney"
    )


def whisper_log_mel(wave: torch.Tensor, n_mels: int = 80, filters: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, W]`` 16 kHz -> ``[B, n_mels, 3000]`` log-mel of the clip zero-padded (or cut) to 30 s."""
    wave = torch.nn.functional.pad(wave[..., :N_SAMPLES], (0, max(0, N_SAMPLES - wave.shape[-1])))
    window = torch.hann_window(N_FFT, device=wave.device, dtype=wave.dtype)
    stft = torch.stft(wave, N_FFT, HOP_LENGTH, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = stft[..., :-1].abs().pow(2)  # [B, 201, 3000]
    filters = whisper_mel_filters(n_mels) if filters is None else filters
    log_spec = torch.matmul(filters.T.to(power), power).clamp_min(1e-10).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)
    return (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0


class HFWhisperEncoder(nn.Module):
    """A transformers Whisper encoder for X-ARES: ``[B, W]`` 16 kHz -> ``[B, ceil(W / 320), d_model]`` at 20 ms.

    ``layer`` picks the hidden state (:mod:`.layers`: ``"last"`` / ``-1`` after the final LayerNorm, an index
    of ``hidden_states``, or ``"mean"``). Weights: a local folder of a ``WhisperModel`` /
    ``WhisperForConditionalGeneration`` checkpoint, ``$XBENCH_HF_<NAME>``, the Hugging Face cache, or a download
    unless offline; ``pretrained=False`` or ``XBENCH_RANDOM_WEIGHTS=1`` builds seeded random weights from the config.
    """

    sampling_rate = SAMPLING_RATE
    hop_size_in_ms = 1000 * SAMPLES_PER_FRAME / SAMPLING_RATE  # 20.0
    output_dim = 512

    def __init__(
        self,
        model_id_or_path: str | Path = "openai/whisper-base",
        layer: Layer | None = -1,
        pretrained: bool | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        model_id = str(model_id_or_path)
        pretrained = use_pretrained(pretrained)
        if pretrained:
            folder = resolve_model_folder(model_id_or_path, getattr(self, "env", None))
            encoder = WhisperModel.from_pretrained(str(folder), dtype=torch.float32).get_encoder()
            source = str(folder)
        else:
            local = Path(model_id).expanduser()
            config = AutoConfig.from_pretrained(str(local)) if local.is_dir() else reference_config(model_id)
            with seeded(seed):
                encoder = WhisperEncoder(config)
            source = f"random (seed {seed})"
            log.warning("%s: random weights (%s)", type(self).__name__, source)
        self._setup(encoder, layer, source)

    @classmethod
    def from_model(cls, model: PreTrainedModel, layer: Layer | None = -1) -> HFWhisperEncoder:
        """Wrap a built ``WhisperModel`` / ``WhisperForConditionalGeneration`` / ``WhisperEncoder``."""
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self._setup(model if isinstance(model, WhisperEncoder) else model.get_encoder(), layer, "in memory")
        return self

    def _setup(self, encoder: WhisperEncoder, layer: Layer | None, source: str) -> None:
        config: WhisperConfig = encoder.config
        if config.max_source_positions * SAMPLES_PER_FRAME != N_SAMPLES:
            raise ValueError(f"expected a 30 s Whisper encoder (1500 positions), got {config.max_source_positions}")
        self.encoder = encoder
        self.layer = check_layer(parse_layer(layer), int(config.encoder_layers) + 1, "whisper encoder")
        self.weights_source = source
        self.output_dim = int(config.d_model)
        self.identity_settings = {"layer": self.layer, "config_sha256": config_digest(config)}
        self.register_buffer("mel_filters", whisper_mel_filters(config.num_mel_bins), persistent=False)
        self.eval()

    def _encode(self, chunk: torch.Tensor) -> torch.Tensor:
        mel = whisper_log_mel(chunk, self.mel_filters.shape[-1], self.mel_filters)
        hidden = select_hidden(lambda states: self.encoder(input_features=mel, output_hidden_states=states), self.layer)
        return hidden[:, : max(1, math.ceil(chunk.shape[-1] / SAMPLES_PER_FRAME))]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        return torch.cat([self._encode(chunk) for chunk in audio.split(N_SAMPLES, dim=-1)], dim=1)


class WhisperBaseEncoder(HFWhisperEncoder):
    """openai/whisper-base encoder (X-ARES's whisper baseline, fixed): 512-d, 20 ms, no 30 s padding frames."""

    card_name = "whisper-base"
    env = env_name(card_name)

    def __init__(
        self, model_id_or_path: str | Path | None = None, layer: Layer | None = -1, pretrained: bool | None = None
    ):
        super().__init__(model_id_or_path or MODELS[self.card_name][0], layer=layer, pretrained=pretrained)
