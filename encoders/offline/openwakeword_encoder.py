"""openWakeWord 0.5.1's copy of Google's ``speech_embedding`` (ONNX) as a frame encoder: 96-d, 80 ms hop.

The two ONNX models ship inside the ``openwakeword==0.5.1`` wheel (0.6 downloads them at run time).
The mel model gives ``N // 160 - 3`` frames (32 bands, transformed ``x / 10 + 2`` as openWakeWord does);
each embedding reads 76 mel frames (0.775 s) with a stride of 8 (80 ms). A clip shorter than 0.775 s
would give no frame, so the input is left-padded with 0.72 s of zeros (9 strides): embedding ``t`` then
covers the 0.79 s ending 10 ms before ``(t + 1) * 80`` ms, a ``W``-sample input gives ``ceil(W / 1280)``
frames (at least one), and frame ``t >= 9`` equals frame ``t - 9`` of openWakeWord's ``embed_clips``.
The input is right-padded to whole 80 ms steps (openWakeWord's batch helper miscounts other lengths).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from xbench.encoders.offline import pinned_weights

HOP = 1280  # samples per embedding (80 ms)
WINDOW = 76  # mel frames per embedding
LEFT_PAD = 9 * HOP  # 11,520 samples: a whole number of strides keeps the official frame grid


class OpenWakeWordEncoder(torch.nn.Module):
    """``[B, W]`` 16 kHz -> ``[B, ceil(W / 1280), 96]`` speech embeddings."""

    sampling_rate = 16000
    hop_size_in_ms = 80
    output_dim = 96

    def __init__(self, threads: int | None = None) -> None:
        super().__init__()
        from openwakeword.utils import AudioFeatures

        pinned_weights("openwakeword")  # the wheel's two ONNX models are the ones the card pins

        # onnxruntime threads: torch's setting unless given (the harness sets it from XBENCH_NUM_THREADS)
        self.features = AudioFeatures(inference_framework="onnx", ncpu=threads or torch.get_num_threads())

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        wave = audio.detach().to("cpu", torch.float32).numpy()
        batch, width = wave.shape
        frames = max(1, math.ceil(width / HOP))
        padded = np.zeros((batch, LEFT_PAD + frames * HOP), dtype=np.float32)
        # int16 scale, as openWakeWord feeds the mel model
        padded[:, LEFT_PAD : LEFT_PAD + width] = np.clip(np.round(wave * 32767.0), -32768, 32767)
        # one clip per call: the mel model clamps to 80 dB below the maximum of its whole input, so a batched
        # call would let a louder neighbour change a clip's quiet frames (openWakeWord feeds one clip at a time)
        mel = np.concatenate([np.asarray(self.features.melspec_model_predict(row[None])[0]) for row in padded])
        mel = mel.reshape(batch, -1, 32) / 10 + 2
        starts = np.arange(frames) * 8
        windows = np.stack([mel[:, s : s + WINDOW] for s in starts], axis=1)  # [B, T, 76, 32]
        flat = windows.reshape(batch * frames, WINDOW, 32, 1).astype(np.float32)
        emb = np.asarray(self.features.embedding_model_predict(flat)).reshape(batch, frames, 96)
        return torch.from_numpy(emb.astype(np.float32))
