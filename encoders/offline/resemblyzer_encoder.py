"""Resemblyzer's speaker encoder (GE2E d-vector LSTM) as a frame encoder: last LSTM layer, 256-d, 10 ms hop.

The weights ship inside the ``resemblyzer`` wheel (``pretrained.pt``). Front end: the package's own
``wav_to_mel_spectrogram`` (librosa, 40 mel bands, 25 ms window, 10 ms hop, centred frames), so a
``W``-sample clip gives ``1 + W // 160`` frames. The official utterance embedding (``embed_utterance``)
is the L2-normalised ReLU(linear) of the final hidden state over 1.6 s partials; here every frame's
output of the last LSTM layer is returned instead, which is what a frame-level benchmark needs.
"""

from __future__ import annotations

import numpy as np
import torch

from xbench.encoders.offline import pinned_weights


class ResemblyzerEncoder(torch.nn.Module):
    """``[B, W]`` 16 kHz -> ``[B, 1 + W // 160, 256]`` LSTM outputs."""

    sampling_rate = 16000
    hop_size_in_ms = 10
    output_dim = 256

    def __init__(self) -> None:
        super().__init__()
        from resemblyzer import VoiceEncoder

        pinned_weights("resemblyzer")  # the wheel's pretrained.pt is the one the card pins
        self.model = VoiceEncoder("cpu", verbose=False)
        self.model.eval()

    def _mels(self, audio: torch.Tensor) -> torch.Tensor:
        from resemblyzer.audio import wav_to_mel_spectrogram

        wave = audio.detach().to("cpu", torch.float32).numpy()
        mels = np.stack([wav_to_mel_spectrogram(w) for w in wave])  # [B, T, 40]
        return torch.from_numpy(mels)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        mels = self._mels(audio).to(next(self.model.parameters()).device)
        out, _ = self.model.lstm(mels)
        return out
