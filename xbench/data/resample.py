"""Band-limited resampling in plain torch, matching ``torchaudio.functional.resample``.

X-ARES resamples every clip with ``torchaudio.functional.resample(x, sr, encoder.sampling_rate)``
(windowed sinc, Hann window, 6 zero crossings, rolloff 0.99). xbench must not depend on torchaudio,
so this module reimplements the same polyphase windowed-sinc filter: both rates are divided by their
gcd, one FIR kernel per output phase is built, and the signal is filtered with a strided ``conv1d``.
Kernels are cached per (rates, filter parameters, dtype, device) in a pure ``lru_cache``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = ["resample", "resample_kernel"]

_KAISER_DEFAULT_BETA = 14.769656459379492
_METHODS = ("sinc_interp_hann", "sinc_interp_kaiser")


def _as_int_rate(freq: float, name: str) -> int:
    if freq <= 0:
        raise ValueError(f"{name} must be positive, got {freq}")
    if int(freq) != freq:
        raise ValueError(f"{name} must be a whole number of Hz, got {freq}; scale both rates to integers")
    return int(freq)


@lru_cache(maxsize=64)
def _kernel(
    orig: int,
    new: int,
    lowpass_filter_width: int,
    rolloff: float,
    resampling_method: str,
    beta: float | None,
    dtype: torch.dtype,
    device: str,
) -> tuple[torch.Tensor, int]:
    # ``orig``/``new`` are already divided by their gcd. Output phase j (0 <= j < new) sits at input
    # time j * orig / new; its taps cover input offsets -width .. width + orig - 1 relative to the
    # stride start, so one conv1d with stride ``orig`` and ``new`` output channels produces all phases.
    cutoff = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / cutoff)
    taps = torch.arange(-width, width + orig, dtype=dtype, device=device) / orig
    phase = torch.arange(0, -new, -1, dtype=dtype, device=device)[:, None] / new
    t = ((phase + taps[None, :]) * cutoff).clamp_(-lowpass_filter_width, lowpass_filter_width)
    if resampling_method == "sinc_interp_hann":
        window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    else:
        b = torch.tensor(float(_KAISER_DEFAULT_BETA if beta is None else beta), dtype=dtype, device=device)
        window = torch.i0(b * torch.sqrt(1 - (t / lowpass_filter_width) ** 2)) / torch.i0(b)
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones((), dtype=dtype, device=device), torch.sin(t) / t)
    kernel = (sinc * (window * (cutoff / orig)))[:, None, :].contiguous()
    return kernel, width


def _output_length(length: int, orig: int, new: int) -> int:
    # torchaudio computes ceil(new * length / orig) on a float32 tensor; the float32 rounding drops
    # one sample for some lengths (e.g. 180697 samples at 44.1 kHz -> 65559, not 65560 at 16 kHz).
    # Reproduce it so that clip lengths, hence crops and frame counts, match X-ARES exactly.
    return math.ceil(float(np.float32(new * length / orig)))


def resample_kernel(
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    resampling_method: str = "sinc_interp_hann",
    beta: float | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, int]:
    """The cached polyphase kernel ``[new/g, 1, 2*width + orig/g]`` and ``width`` (``g`` = gcd of the rates).

    The returned tensor is shared by the cache: do not modify it in place.
    """
    orig = _as_int_rate(orig_freq, "orig_freq")
    new = _as_int_rate(new_freq, "new_freq")
    if resampling_method not in _METHODS:
        raise ValueError(f"resampling_method must be one of {_METHODS}, got {resampling_method!r}")
    if lowpass_filter_width <= 0:
        raise ValueError(f"lowpass_filter_width must be positive, got {lowpass_filter_width}")
    if not dtype.is_floating_point:
        raise TypeError(f"resampling needs a floating point dtype, got {dtype}")
    g = math.gcd(orig, new)
    return _kernel(
        orig // g,
        new // g,
        int(lowpass_filter_width),
        float(rolloff),
        resampling_method,
        None if beta is None else float(beta),
        dtype,
        str(torch.device(device)),
    )


def resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    resampling_method: str = "sinc_interp_hann",
    beta: float | None = None,
) -> torch.Tensor:
    """Resample ``waveform`` (``[..., time]``, floating point) from ``orig_freq`` to ``new_freq`` Hz.

    Same algorithm, defaults and output length (``ceil(time * new / orig)``, rounded through float32
    as torchaudio does) as ``torchaudio.functional.resample``; returns ``waveform`` itself when the
    rates are equal.
    """
    orig = _as_int_rate(orig_freq, "orig_freq")
    new = _as_int_rate(new_freq, "new_freq")
    if not waveform.is_floating_point():
        raise TypeError(f"resample expects a floating point waveform, got {waveform.dtype}")
    if orig == new:
        return waveform
    kernel, width = resample_kernel(
        orig, new, lowpass_filter_width, rolloff, resampling_method, beta, waveform.dtype, waveform.device
    )
    g = math.gcd(orig, new)
    orig_r, new_r = orig // g, new // g
    shape = waveform.shape
    length = shape[-1]
    flat = waveform.reshape(math.prod(shape[:-1]), 1, length)
    padded = torch.nn.functional.pad(flat, (width, width + orig_r))
    out = torch.nn.functional.conv1d(padded, kernel, stride=orig_r)  # [n, new_r, frames]
    out = out.transpose(1, 2).reshape(flat.shape[0], out.shape[1] * out.shape[2])
    target = _output_length(length, orig_r, new_r)
    return out[:, :target].reshape(*shape[:-1], target)
