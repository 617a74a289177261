"""Parameter-free baseline encoders: a log-mel spectrogram and a fixed random projection of it."""

from __future__ import annotations

import torch

from xbench.encoders.card import ZooCard
from xbench.encoders.frontends import MelSpectrogram


class LogMelEncoder(torch.nn.Module):
    """64-band log-mel frames (25 ms window, 10 ms hop) at 16 kHz: ``[B, W] -> [B, W/160 + 1, 64]``."""

    sampling_rate = 16000
    hop_size_in_ms = 10
    output_dim = 64

    def __init__(self, n_mels: int = 64) -> None:
        super().__init__()
        self.output_dim = n_mels
        self.mel = MelSpectrogram(self.sampling_rate, n_fft=512, win_length=400, hop_length=160, n_mels=n_mels)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        return torch.log(self.mel(audio) + 1e-6).transpose(1, 2)


class RandomProjectionEncoder(torch.nn.Module):
    """128-band log-mel frames projected by a fixed, seeded Gaussian matrix to 512 dimensions (10 ms hop)."""

    sampling_rate = 16000
    hop_size_in_ms = 10
    output_dim = 512

    def __init__(self, seed: int = 0, n_mels: int = 128, output_dim: int = 512) -> None:
        super().__init__()
        self.output_dim = output_dim
        self.logmel = LogMelEncoder(n_mels)
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("projection", torch.randn(n_mels, output_dim, generator=gen) / n_mels**0.5)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.logmel(audio) @ self.projection


CARDS = [
    ZooCard(
        name="logmel",
        family="baselines",
        factory="xbench.encoders.baselines:LogMelEncoder",
        sampling_rate=16000,
        hop_size_in_ms=10,
        output_dim=64,
        parameters=0,
        licence="Apache-2.0",
        description="64-band log-mel spectrogram (25 ms / 10 ms); no learned parameters.",
    ),
    ZooCard(
        name="random-projection",
        family="baselines",
        factory="xbench.encoders.baselines:RandomProjectionEncoder",
        sampling_rate=16000,
        hop_size_in_ms=10,
        output_dim=512,
        parameters=0,
        licence="Apache-2.0",
        description="128-band log-mel projected by a fixed seeded Gaussian matrix to 512 dimensions.",
    ),
]
