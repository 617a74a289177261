"""Small, deterministic audio helpers: resampling, trimming, levels, and seeded per-item RNGs."""

from __future__ import annotations

import hashlib
from math import gcd

import numpy as np

SAMPLE_RATE = 16000


def item_rng(*parts: object) -> np.random.Generator:
    """A generator seeded from ``parts`` only (not from call order), so items are order-independent."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def resample(x: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy) to ``sr_out``; float32 out."""
    from scipy.signal import resample_poly

    x = np.asarray(x, dtype=np.float64)
    if sr_in == sr_out:
        return x.astype(np.float32)
    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (tape-style: pitch rises with speed); factor rounded to 1 %."""
    down = int(round(100 * factor))
    if down == 100:
        return np.asarray(x, dtype=np.float32)
    return resample(x, down, 100)


def trim_silence(x: np.ndarray, threshold_db: float = -40.0, margin: int = 160) -> np.ndarray:
    """Drop leading and trailing samples quieter than ``threshold_db`` below the peak (keeps ``margin``)."""
    x = np.asarray(x, dtype=np.float32)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak <= 0:
        return x
    loud = np.nonzero(np.abs(x) >= peak * 10 ** (threshold_db / 20))[0]
    lo, hi = max(0, loud[0] - margin), min(len(x), loud[-1] + 1 + margin)
    return x[lo:hi]


def normalise_peak(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale so that max |x| = ``peak`` (silence stays silence)."""
    x = np.asarray(x, dtype=np.float32)
    m = float(np.abs(x).max()) if x.size else 0.0
    return x if m <= 0 else (x * (peak / m)).astype(np.float32)


def place(x: np.ndarray, length: int, rng: np.random.Generator, jitter: float = 0.1) -> np.ndarray:
    """``x`` in a ``length``-sample clip: centred (± ``jitter`` of the free room), or centre-cropped."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) >= length:
        start = (len(x) - length) // 2
        return x[start : start + length].copy()
    room = length - len(x)
    offset = int(room / 2 + rng.uniform(-jitter, jitter) * room)
    offset = min(max(offset, 0), room)
    out = np.zeros(length, dtype=np.float32)
    out[offset : offset + len(x)] = x
    return out


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Add seeded white noise ``snr_db`` below the clip's RMS over its non-silent part."""
    x = np.asarray(x, dtype=np.float32)
    active = x[np.abs(x) > 1e-4]
    rms = float(np.sqrt(np.mean(active**2))) if active.size else 0.0
    if rms <= 0:
        return x
    noise = rng.standard_normal(len(x)).astype(np.float32) * rms * 10 ** (-snr_db / 20)
    return (x + noise).astype(np.float32)


def finish(x: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1) as float32 (what PCM16/FLAC encoding expects)."""
    return np.clip(np.asarray(x, dtype=np.float32), -1.0, 32767 / 32768)
