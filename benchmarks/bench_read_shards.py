"""Clips per second through xbench's shard reader (one process, one thread, warm page cache).

Writes 5 s PCM16 clips as X-ARES shards with ``write_audio_shards`` into a temporary folder, then times
``iter_clips`` (tar read + soundfile decode + resample + mono) against raw tar iteration in the same run:

* 16 kHz wav -> 16 kHz (no resampling; the target is >= 2,000 clips/s on this machine)
* 44.1 kHz wav -> 16 kHz (resampling included)
* 16 kHz flac -> 16 kHz

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_read_shards.py [--clips 2000] [--reps 3]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from xbench.data.shards import iter_clips, iter_members
from xbench.data.writer import write_audio_shards

SECONDS = 5
TARGET_SR = 16000


def _items(n: int, sr: int, seed: int = 0) -> Iterable[tuple[str, tuple[np.ndarray, int], dict]]:
    rng = np.random.default_rng(seed)
    base = rng.integers(-8000, 8000, size=SECONDS * sr + sr, dtype=np.int16)
    for i in range(n):
        offset = int(rng.integers(0, sr))
        yield f"clip{i:06d}", (base[offset : offset + SECONDS * sr], sr), {"label": str(i % 10)}


def _time(count: Callable[[], int], reps: int) -> tuple[float, float, int]:
    """(best, median) items per second over ``reps`` timed passes after one warm-up pass, and the count."""
    n = count()
    rates = []
    for _ in range(reps):
        start = time.perf_counter()
        got = count()
        rates.append(got / (time.perf_counter() - start))
        assert got == n
    return max(rates), statistics.median(rates), n


def _count_clips(shards: list[Path]) -> Callable[[], int]:
    return lambda: sum(1 for _ in iter_clips(shards, TARGET_SR))


def _count_raw(shards: list[Path]) -> Callable[[], int]:
    # raw tar iteration: every member's bytes read, no grouping, decoding or resampling; 2 members a clip
    return lambda: sum(1 for shard in shards for _ in iter_members(shard)) // 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000, help="16 kHz wav clips (default 2000)")
    parser.add_argument("--clips-other", type=int, default=500, help="clips for the 44.1 kHz and flac variants")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--maxcount", type=int, default=500, help="clips per shard")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    with tempfile.TemporaryDirectory(prefix="xbench-bench-") as tmp:
        variants = [
            ("wav 16 kHz -> 16 kHz", "wav16", args.clips, 16000, "wav"),
            ("wav 44.1 kHz -> 16 kHz", "wav44", args.clips_other, 44100, "wav"),
            ("flac 16 kHz -> 16 kHz", "flac16", args.clips_other, 16000, "flac"),
        ]
        raw_rate = None
        for label, name, n, sr, fmt in variants:
            t0 = time.perf_counter()
            shards = write_audio_shards(Path(tmp) / name, "bench-*.tar", _items(n, sr), args.maxcount, audio_format=fmt)
            write_s = time.perf_counter() - t0
            if raw_rate is None:
                raw_rate, raw_median, _ = _time(_count_raw(shards), args.reps)
                rows.append(("raw tar iteration (" + label.split(" ->")[0] + ")", n, raw_rate, raw_median, None))
            best, median, got = _time(_count_clips(shards), args.reps)
            assert got == n
            rows.append((label, n, best, median, write_s))

    print(f"{SECONDS} s clips, 1 thread, best and median of {args.reps} passes (after a warm-up pass)")
    print(f"{'pipeline':34} {'clips':>6} {'clips/s':>9} {'median':>8} {'ms/clip':>8} {'vs raw tar':>10}")
    for label, n, best, median, _ in rows:
        print(f"{label:34} {n:6d} {best:9.0f} {median:8.0f} {1000 / best:8.3f} {best / raw_rate:10.3f}")
    wav16 = rows[1][2]
    print(f"44.1 kHz wav (with resampling) / 16 kHz wav: {rows[2][2] / wav16:.3f}")
    print(f"flac / wav (16 kHz):                         {rows[3][2] / wav16:.3f}")
    print(f"target >= 2000 clips/s for 16 kHz wav: {'met' if wav16 >= 2000 else 'NOT met'} ({wav16:.0f})")


if __name__ == "__main__":
    main()
