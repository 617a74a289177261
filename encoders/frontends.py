"""Audio front-ends in plain torch, with torchaudio's semantics (no torchaudio at run time).

* :func:`mel_filterbank` = ``torchaudio.functional.melscale_fbanks``
* :class:`MelSpectrogram` = ``torchaudio.transforms.MelSpectrogram`` (centre padding, reflect, Hann)
* :func:`amplitude_to_db` = ``torchaudio.transforms.AmplitudeToDB`` / ``functional.amplitude_to_DB``
"""

from __future__ import annotations

import math

import torch


def _hz_to_mel(freq: torch.Tensor | float, scale: str) -> torch.Tensor:
    freq = torch.as_tensor(freq, dtype=torch.float64)
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + freq / 700.0)
    if scale != "slaney":
        raise ValueError(f"mel_scale must be 'htk' or 'slaney', got {scale!r}")
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    linear = freq / f_sp
    return torch.where(
        freq >= min_log_hz, min_log_mel + torch.log(freq.clamp_min(1e-10) / min_log_hz) / logstep, linear
    )


def _mel_to_hz(mels: torch.Tensor, scale: str) -> torch.Tensor:
    if scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return torch.where(mels >= min_log_mel, min_log_hz * torch.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filterbank(
    n_freqs: int,
    f_min: float,
    f_max: float,
    n_mels: int,
    sample_rate: int,
    norm: str | None = None,
    mel_scale: str = "htk",
) -> torch.Tensor:
    """Triangular mel filters ``[n_freqs, n_mels]`` exactly as ``torchaudio.functional.melscale_fbanks``."""
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    m_min, m_max = _hz_to_mel(f_min, mel_scale), _hz_to_mel(f_max, mel_scale)
    m_pts = torch.linspace(float(m_min), float(m_max), n_mels + 2, dtype=torch.float64)
    f_pts = _mel_to_hz(m_pts, mel_scale)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = torch.clamp(torch.minimum(down, up), min=0.0)
    if norm == "slaney":
        enorm = 2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels])
        fb = fb * enorm.unsqueeze(0)
    elif norm is not None:
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    return fb.float()


class MelSpectrogram(torch.nn.Module):
    """``[..., W] -> [..., n_mels, frames]`` power mel spectrogram, torchaudio semantics."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 400,
        win_length: int | None = None,
        hop_length: int | None = None,
        f_min: float = 0.0,
        f_max: float | None = None,
        n_mels: int = 128,
        power: float = 2.0,
        center: bool = True,
        pad_mode: str = "reflect",
        norm: str | None = None,
        mel_scale: str = "htk",
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.win_length = win_length or n_fft
        self.hop_length = hop_length or self.win_length // 2
        self.power = power
        self.center = center
        self.pad_mode = pad_mode
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        fb = mel_filterbank(n_fft // 2 + 1, f_min, f_max or sample_rate / 2, n_mels, sample_rate, norm, mel_scale)
        self.register_buffer("fb", fb, persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        shape = wave.shape
        flat = wave.reshape(-1, shape[-1])
        spec = torch.stft(
            flat,
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.window,
            center=self.center,
            pad_mode=self.pad_mode,
            normalized=False,
            onesided=True,
            return_complex=True,
        ).abs()
        if self.power != 1.0:
            spec = spec.pow(self.power)
        mel = torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)
        return mel.reshape(shape[:-1] + mel.shape[-2:])


def amplitude_to_db(
    x: torch.Tensor,
    multiplier: float = 10.0,
    amin: float = 1e-10,
    ref: float = 1.0,
    top_db: float | None = None,
    per_example: bool = True,
) -> torch.Tensor:
    """``torchaudio.functional.amplitude_to_DB`` for ``[..., freq, time]`` input.

    ``top_db`` clamps each example to ``max - top_db``. torchaudio clamps per example for 3-D/4-D
    input and over the whole tensor for 2-D input; ``per_example=False`` clamps over the whole
    batch (the global clamp some reference models apply).
    """
    db = multiplier * torch.log10(torch.clamp(x, min=amin))
    db = db - multiplier * math.log10(max(amin, ref))
    if top_db is None:
        return db
    if per_example and db.ndim >= 3:
        peak = db.reshape(db.shape[:-2] + (-1,)).amax(dim=-1)[..., None, None]
    else:
        peak = db.max()
    return torch.maximum(db, peak - top_db)
