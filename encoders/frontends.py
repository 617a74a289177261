"""Audio front-ends in plain torch, with torchaudio's semantics (no torchaudio at run time).

* :func:`mel_filterbank` = ``torchaudio.functional.melscale_fbanks``
* :class:`MelSpectrogram` = ``torchaudio.transforms.MelSpectrogram`` (centre padding, reflect, Hann)
* :func:`amplitude_to_db` = ``torchaudio.transforms.AmplitudeToDB`` / ``functional.amplitude_to_DB``
* :func:`kaldi_fbank` = ``torchaudio.compliance.kaldi.fbank`` (batched over leading dimensions)
* :func:`kaldi_mel_banks` = ``torchaudio.compliance.kaldi.get_mel_banks`` (no VTLN warping)
"""

from __future__ import annotations

import functools
import math

import torch

_F_SP = 200.0 / 3  # Slaney: Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(freq: float, scale: str) -> float:
    if scale == "htk":
        return 2595.0 * math.log10(1.0 + freq / 700.0)
    if scale != "slaney":
        raise ValueError(f"mel_scale must be 'htk' or 'slaney', got {scale!r}")
    if freq >= _MIN_LOG_HZ:
        return _MIN_LOG_HZ / _F_SP + math.log(freq / _MIN_LOG_HZ) / _LOGSTEP
    return freq / _F_SP


def _mel_to_hz(mels: torch.Tensor, scale: str) -> torch.Tensor:
    if scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    min_log_mel = _MIN_LOG_HZ / _F_SP
    return torch.where(mels >= min_log_mel, _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mels - min_log_mel)), _F_SP * mels)


def mel_filterbank(
    n_freqs: int,
    f_min: float,
    f_max: float,
    n_mels: int,
    sample_rate: int,
    norm: str | None = None,
    mel_scale: str = "htk",
) -> torch.Tensor:
    """Triangular mel filters ``[n_freqs, n_mels]`` exactly as ``torchaudio.functional.melscale_fbanks``.

    Computed in float32 in torchaudio's order of operations, so the filters agree bit for bit.
    """
    if norm not in (None, "slaney"):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_pts = torch.linspace(_hz_to_mel(f_min, mel_scale), _hz_to_mel(f_max, mel_scale), n_mels + 2)
    f_pts = _mel_to_hz(m_pts, mel_scale)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = torch.clamp(torch.minimum(down, up), min=0.0)
    if norm == "slaney":
        fb = fb * (2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels])).unsqueeze(0)
    return fb


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
        spec = power_spectrogram(
            wave, self.n_fft, self.hop_length, self.window, self.power, center=self.center, pad_mode=self.pad_mode
        )
        return apply_mel(spec, self.fb)


def power_spectrogram(
    wave: torch.Tensor,
    n_fft: int,
    hop_length: int,
    window: torch.Tensor,
    power: float = 2.0,
    center: bool = True,
    pad_mode: str = "reflect",
) -> torch.Tensor:
    """``[..., W] -> [..., n_fft // 2 + 1, frames]`` magnitude ** power (``torchaudio.transforms.Spectrogram``)."""
    shape = wave.shape
    spec = torch.stft(
        wave.reshape(-1, shape[-1]),
        n_fft,
        hop_length,
        window.shape[-1],
        window,
        center=center,
        pad_mode=pad_mode,
        normalized=False,
        onesided=True,
        return_complex=True,
    ).abs()
    if power != 1.0:
        spec = spec.pow(power)
    return spec.reshape(shape[:-1] + spec.shape[-2:])


def apply_mel(spec: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """``[..., freq, time] x [freq, n_mels] -> [..., n_mels, time]`` (``torchaudio.transforms.MelScale``)."""
    return torch.matmul(spec.transpose(-1, -2), fb).transpose(-1, -2)


def amplitude_to_db(
    x: torch.Tensor,
    multiplier: float = 10.0,
    amin: float = 1e-10,
    ref: float = 1.0,
    top_db: float | None = None,
    per_example: bool = True,
) -> torch.Tensor:
    """``torchaudio.functional.amplitude_to_DB`` for ``[..., freq, time]`` input.

    With ``top_db``, ``per_example=True`` clamps every ``[freq, time]`` slice to its own
    ``max - top_db``; ``per_example=False`` clamps the whole tensor to its global maximum. torchaudio
    treats the first of three dimensions as channels, so ``AmplitudeToDB`` on a ``[B, freq, time]``
    batch is the global clamp (``per_example=False``); on 4-D input it clamps per leading index.
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


# --------------------------------------------------------------------------------------------------
# Kaldi filterbank (torchaudio.compliance.kaldi.fbank semantics)
# --------------------------------------------------------------------------------------------------

_KALDI_EPS = torch.finfo(torch.float32).eps  # Kaldi's floor on energies before the log
_WINDOW_TYPES = ("hamming", "hanning", "povey", "rectangular", "blackman")


def _kaldi_mel(freq: torch.Tensor) -> torch.Tensor:
    return 1127.0 * (1.0 + freq / 700.0).log()


@functools.lru_cache(maxsize=16)
def _kaldi_mel_banks_cached(
    num_bins: int, window_length_padded: int, sample_freq: float, low_freq: float, high_freq: float
) -> torch.Tensor:
    if num_bins <= 3:
        raise ValueError(f"kaldi fbank needs more than 3 mel bins, got {num_bins}")
    if window_length_padded % 2:
        raise ValueError(f"padded window length must be even, got {window_length_padded}")
    nyquist = 0.5 * sample_freq
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(f"bad mel range: low_freq {low_freq}, high_freq {high_freq}, nyquist {nyquist}")
    fft_bin_width = sample_freq / window_length_padded
    mel_low = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_high = 1127.0 * math.log(1.0 + high_freq / 700.0)
    delta = (mel_high - mel_low) / (num_bins + 1)
    # float32 arithmetic in torchaudio's order, so the banks agree with it bit for bit
    index = torch.arange(num_bins).unsqueeze(1)
    left = mel_low + index * delta
    centre = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    mel = _kaldi_mel(fft_bin_width * torch.arange(window_length_padded / 2)).unsqueeze(0)
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    return torch.clamp(torch.minimum(up, down), min=0.0)


def kaldi_mel_banks(
    num_bins: int, window_length_padded: int, sample_freq: float, low_freq: float, high_freq: float
) -> torch.Tensor:
    """Kaldi's triangular mel filters ``[num_bins, window_length_padded // 2]`` (float32).

    ``high_freq <= 0`` is an offset from the Nyquist frequency, as in Kaldi.
    """
    return _kaldi_mel_banks_cached(
        int(num_bins), int(window_length_padded), float(sample_freq), float(low_freq), float(high_freq)
    ).clone()


def kaldi_window(
    window_type: str, size: int, blackman_coeff: float = 0.42, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Kaldi's analysis window (symmetric; ``povey`` = Hann ** 0.85)."""
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False, dtype=dtype)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=dtype)
    if window_type == "povey":
        return torch.hann_window(size, periodic=False, dtype=dtype).pow(0.85)
    if window_type == "rectangular":
        return torch.ones(size, dtype=dtype)
    if window_type == "blackman":
        a = 2 * math.pi / (size - 1)
        n = torch.arange(size, dtype=dtype)
        return blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)
    raise ValueError(f"window_type must be one of {_WINDOW_TYPES}, got {window_type!r}")


@functools.lru_cache(maxsize=32)
def _fbank_constants(
    window_type: str,
    window_size: int,
    blackman_coeff: float,
    num_bins: int,
    padded_size: int,
    sample_freq: float,
    low_freq: float,
    high_freq: float,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The analysis window and the transposed mel banks (a zero row for the Nyquist bin) of one fbank setting,
    built once per dtype and device instead of at every call (never modified by the caller)."""
    window = kaldi_window(window_type, window_size, blackman_coeff, dtype).to(device)
    banks = kaldi_mel_banks(num_bins, padded_size, sample_freq, low_freq, high_freq)
    return window, torch.nn.functional.pad(banks, (0, 1)).to(device=device, dtype=dtype).T


def kaldi_frames(wave: torch.Tensor, window_size: int, window_shift: int, snip_edges: bool) -> torch.Tensor:
    """Cut ``[..., W]`` into Kaldi frames ``[..., m, window_size]``.

    ``snip_edges=True`` keeps the frames that fit (``m = 1 + (W - size) // shift``); ``False`` gives
    ``m = (W + shift // 2) // shift`` frames over the signal mirrored at both ends (Kaldi's
    ``[2, 1, 0, 0, 1, 2]`` reflection, not numpy's).
    """
    num_samples = wave.shape[-1]
    if snip_edges:
        if num_samples < window_size:
            raise ValueError(f"input of {num_samples} samples is shorter than the {window_size}-sample window")
        return wave.unfold(-1, window_size, window_shift)
    frames = (num_samples + window_shift // 2) // window_shift
    pad = window_size // 2 - window_shift // 2
    reverse = wave.flip(-1)
    if pad > 0:
        padded = torch.cat((reverse[..., -pad:], wave, reverse), dim=-1)
    else:
        padded = torch.cat((wave[..., -pad:], reverse), dim=-1)
    if frames == 0:
        return padded.new_zeros(wave.shape[:-1] + (0, window_size))
    needed = (frames - 1) * window_shift + window_size
    if padded.shape[-1] < needed:  # very short input: Kaldi would read past the reflected copy
        raise ValueError(f"input of {num_samples} samples is too short for snip_edges=False framing")
    return padded[..., :needed].unfold(-1, window_size, window_shift)


def kaldi_fbank(
    waveform: torch.Tensor,
    num_mel_bins: int,
    sample_frequency: float = 16000.0,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    dither: float = 0.0,
    snip_edges: bool = True,
    high_freq: float = 0.0,
    low_freq: float = 20.0,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    window_type: str = "povey",
    round_to_power_of_two: bool = True,
    use_energy: bool = False,
    use_log_fbank: bool = True,
    use_power: bool = True,
    energy_floor: float = 1.0,
    raw_energy: bool = True,
    htk_compat: bool = False,
    blackman_coeff: float = 0.42,
    subtract_mean: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Kaldi log-mel filterbank of ``[..., W]`` waveforms: ``[..., frames, num_mel_bins (+1 with energy)]``.

    Same numbers as ``torchaudio.compliance.kaldi.fbank`` (without VTLN), but every leading index is a
    separate signal (torchaudio reads only the first channel of a ``[C, W]`` input). Kaldi scales:
    a waveform in [-1, 1] is usually multiplied by 2**15 first. ``dither`` draws from ``generator``.
    """
    if not 0.0 <= preemphasis_coefficient <= 1.0:
        raise ValueError(f"preemphasis_coefficient must be in [0, 1], got {preemphasis_coefficient}")
    window_shift = int(sample_frequency * frame_shift * 0.001)
    window_size = int(sample_frequency * frame_length * 0.001)
    padded_size = 1 << (window_size - 1).bit_length() if round_to_power_of_two else window_size
    if window_size < 2 or window_shift <= 0:
        raise ValueError(f"frame_length/frame_shift give window {window_size} and shift {window_shift} samples")
    if padded_size % 2:
        raise ValueError("the padded window size must be even: use round_to_power_of_two or change frame_length")
    dtype = waveform.dtype if waveform.is_floating_point() else torch.float32
    frames = kaldi_frames(waveform.to(dtype), window_size, window_shift, snip_edges)
    eps = torch.tensor(_KALDI_EPS, dtype=dtype, device=frames.device)

    def log_energy(x: torch.Tensor) -> torch.Tensor:
        energy = torch.maximum(x.pow(2).sum(-1), eps).log()
        return energy if energy_floor == 0.0 else energy.clamp_min(math.log(energy_floor))

    if dither != 0.0:
        noise = torch.randn(frames.shape, generator=generator, dtype=dtype, device=frames.device)
        frames = frames + noise * dither
    if remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    energy = log_energy(frames) if raw_energy else None
    if preemphasis_coefficient != 0.0:
        previous = torch.cat((frames[..., :1], frames[..., :-1]), dim=-1)
        frames = frames - preemphasis_coefficient * previous
    window, banks_t = _fbank_constants(
        window_type, window_size, blackman_coeff, num_mel_bins, padded_size, sample_frequency, low_freq, high_freq,
        dtype, frames.device,
    )  # fmt: skip
    frames = frames * window
    if padded_size != window_size:
        frames = torch.nn.functional.pad(frames, (0, padded_size - window_size))
    if energy is None:
        energy = log_energy(frames)
    spectrum = torch.fft.rfft(frames).abs()
    if use_power:
        spectrum = spectrum.pow(2.0)
    mel = torch.matmul(spectrum, banks_t)
    if use_log_fbank:
        mel = torch.maximum(mel, eps).log()
    if use_energy:
        mel = torch.cat((mel, energy.unsqueeze(-1)) if htk_compat else (energy.unsqueeze(-1), mel), dim=-1)
    if subtract_mean:
        mel = mel - mel.mean(dim=-2, keepdim=True)
    return mel
