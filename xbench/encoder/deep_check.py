"""``xbench check``: X-ARES's ten checks plus the checks a benchmark run actually depends on.

Each check reports pass / warn / fail with a one-line reason and the measured value. The contract
checks call the encoder as the harness will (:class:`~xbench.encoder.contract.HarnessedEncoder`);
the dtype and 1-D checks call it directly, since the harness hides those differences.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from xbench.encoder.check_result import CheckReport, CheckResult
from xbench.encoder.contract import (
    HarnessedEncoder,
    HarnessOptions,
    attribute_problems,
)
from xbench.encoder.xares_checker import xares_checks


@dataclass(frozen=True)
class DeepCheckOptions:
    """What the deep checker measures.

    frame_durations: input lengths (s) whose frame counts are compared with ``hop_size_in_ms``.
    long_seconds: length of the long-input run (X-ARES promises inputs up to 10 minutes).
    throughput_clips / throughput_seconds: batch used to measure audio seconds per wall second.
    invariance_warn: cosine below which batch invariance (a clip zero-padded in a batch) warns.
    batch_stats_warn / batch_stats_fail: relative difference (Frobenius norm of the change over the larger
        norm of the two outputs) between a clip batched with another clip of equal length and the clip
        alone, above which the batch-statistics check warns (beyond float32 noise) / fails (a leak).
    """

    frame_durations: tuple[float, ...] = (0.5, 1.0, 10.0, 60.0)
    long_seconds: float = 600.0
    throughput_clips: int = 4
    throughput_seconds: float = 10.0
    invariance_warn: float = 0.99
    batch_stats_warn: float = 1e-4
    batch_stats_fail: float = 1e-2
    frame_tolerance_frames: float = 2.0
    frame_tolerance_fraction: float = 0.05


SIGNAL_CHUNK = 1 << 16  # samples of the test signal computed at a time


def probe_signal(num_samples: int, sampling_rate: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    """A reproducible speech-like test waveform ``[batch, num_samples]`` (float32): chirps plus soft noise.

    Built in chunks of :data:`SIGNAL_CHUNK` samples (the phase in float64 within a chunk), so the only
    allocation the size of the input is the float32 result: 4 bytes per sample.
    """
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(batch, num_samples, dtype=torch.float32)
    for row in out:
        f0 = 100.0 + 300.0 * torch.rand(1, generator=gen, dtype=torch.float64)
        for start in range(0, num_samples, SIGNAL_CHUNK):
            stop = min(start + SIGNAL_CHUNK, num_samples)
            t = torch.arange(start, stop, dtype=torch.float64) / sampling_rate
            wobble = 1.0 + 0.3 * torch.sin(2 * math.pi * 0.5 * t)
            tone = 0.3 * torch.sin(2 * math.pi * f0 * wobble * t)
            row[start:stop] = tone + 0.05 * torch.randn(stop - start, generator=gen, dtype=torch.float64)
    return out


class PeakMemory:
    """Peak resident memory (bytes above the start) of this process while the block runs.

    On Linux the kernel's high-water mark (``VmHWM``) gives the exact peak whenever the block sets a
    new one; otherwise ``/proc/self/statm`` is sampled from a thread every few ms. On CUDA it also
    reports ``torch.cuda.max_memory_allocated``.
    """

    def __init__(self, device: str = "cpu", interval: float = 0.005) -> None:
        self.device = device
        self.interval = interval
        self.peak_rss = 0
        self.peak_cuda: int | None = None
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self._page
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    @staticmethod
    def _high_water() -> int | None:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return None

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._rss() - self._base)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._base = self._rss()
        self._hwm = self._high_water()
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(self.device)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self._rss() - self._base)
        hwm = self._high_water()
        if hwm is not None and self._hwm is not None and hwm > self._hwm:
            self.peak_rss = max(self.peak_rss, hwm - self._base)
        if self.device.startswith("cuda"):
            self.peak_cuda = torch.cuda.max_memory_allocated(self.device)


def _attempt(fn: Callable[[], Any]) -> tuple[Any, str | None]:
    try:
        return fn(), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _mib(n: int) -> float:
    return round(n / 2**20, 1)


class DeepChecker:
    """Runs every check on one encoder instance; :meth:`run` returns a :class:`CheckReport`."""

    def __init__(
        self,
        encoder: torch.nn.Module,
        harness: HarnessOptions | None = None,
        options: DeepCheckOptions | None = None,
    ) -> None:
        self.encoder = encoder
        self.harness_options = harness or HarnessOptions()
        self.opts = options or DeepCheckOptions()
        self.report = CheckReport(encoder=type(encoder).__name__)

    def _add(self, name: str, status: str, reason: str, value: Any = None) -> None:
        self.report.results.append(CheckResult(name, status, reason, value))  # type: ignore[arg-type]

    def run(self) -> CheckReport:
        """Run all checks in a fixed order."""
        self.report.results.extend(xares_checks(self.encoder))
        problems = (
            attribute_problems(self.encoder)
            if isinstance(self.encoder, torch.nn.Module)
            else [f"{type(self.encoder).__name__} is not a torch.nn.Module"]
        )
        if problems:
            self._add("attributes", "fail", "; ".join(problems))
            self._add("remaining checks", "skip", "not run: the encoder's attributes are unusable")
            return self.report
        self._add(
            "attributes",
            "pass",
            "sampling_rate and output_dim are positive ints, hop_size_in_ms a positive number",
            {
                "sampling_rate": self.encoder.sampling_rate,
                "output_dim": self.encoder.output_dim,
                "hop_size_in_ms": self.encoder.hop_size_in_ms,
            },
        )
        self.harness = HarnessedEncoder(self.encoder, self.harness_options)
        self.sr = self.harness.sampling_rate
        self._check_dtype()
        self._check_frames()
        self._check_one_d()
        self._check_batch_invariance()
        self._check_batch_statistics()
        self._check_determinism()
        self._check_long_input()
        self._check_throughput()
        return self.report

    # -- individual checks ---------------------------------------------------------------------

    def _raw(self, wave: torch.Tensor) -> Any:
        with torch.inference_mode():
            return self.encoder(wave.to(self.harness_options.device))

    def _check_dtype(self) -> None:
        out, err = _attempt(lambda: self._raw(probe_signal(self.sr, self.sr, batch=2)))
        if err:
            self._add("dtype", "fail", f"forward on a [2, {self.sr}] batch raised {err}")
            return
        if not isinstance(out, torch.Tensor):
            self._add("dtype", "fail", f"forward returned {type(out).__name__}, not a tensor")
            return
        if not out.is_floating_point():
            self._add("dtype", "fail", f"output dtype {out.dtype} is not floating point", str(out.dtype))
        elif out.dtype == torch.bfloat16:
            self._add(
                "dtype",
                "warn",
                "output is bfloat16: X-ARES crashes on it (Tensor.numpy); xbench converts to float32",
                str(out.dtype),
            )
        elif out.dtype != torch.float32:
            self._add("dtype", "warn", f"output is {out.dtype}; xbench converts it to float32", str(out.dtype))
        else:
            self._add("dtype", "pass", "output is float32", str(out.dtype))

    def _check_frames(self) -> None:
        hop = self.harness.hop_size_in_ms
        counts: dict[float, int] = {}
        finite_bad: list[str] = []
        for seconds in self.opts.frame_durations:
            n = round(seconds * self.sr)
            out, err = _attempt(lambda n=n: self.harness(probe_signal(n, self.sr, seed=1)))
            name = f"frames@{seconds:g}s"
            if err:
                self._add(name, "fail", f"a {seconds:g} s input raised {err}")
                continue
            frames = out.shape[1]
            counts[seconds] = frames
            if not torch.isfinite(out).all():
                bad = int((~torch.isfinite(out)).sum())
                finite_bad.append(f"{seconds:g} s: {bad} of {out.numel()} values")
            expected = self.harness.frames_for(n)
            tol = max(self.opts.frame_tolerance_frames, self.opts.frame_tolerance_fraction * expected)
            value = {"frames": frames, "expected": round(expected, 2)}
            if frames == 0:
                self._add(name, "fail", f"zero output frames for a {seconds:g} s input", value)
            elif abs(frames - expected) > tol:
                real_hop = seconds * 1000.0 / frames
                self._add(
                    name,
                    "fail",
                    f"{frames} frames, but hop_size_in_ms={hop:g} predicts {expected:.1f} (+-{tol:.1f}); "
                    f"the real hop is about {real_hop:.3g} ms",
                    value,
                )
            else:
                self._add(name, "pass", f"{frames} frames, hop_size_in_ms={hop:g} predicts {expected:.1f}", value)
        if counts:
            shortest = min(counts)
            if counts[shortest] >= 1:
                self._add(
                    "at_least_one_frame", "pass", f"{counts[shortest]} frame(s) for {shortest:g} s", counts[shortest]
                )
            else:
                self._add("at_least_one_frame", "fail", f"no output frame for a {shortest:g} s input", 0)
        else:
            self._add("at_least_one_frame", "fail", "no input length produced an output")
        if not counts:
            self._add("finite", "skip", "not run: no input produced an output")
        elif finite_bad:
            self._add("finite", "fail", "NaN or Inf in the output (" + "; ".join(finite_bad) + ")")
        else:
            self._add("finite", "pass", "all output values are finite")

    def _check_one_d(self) -> None:
        out, err = _attempt(lambda: self._raw(probe_signal(self.sr, self.sr)[0]))
        if err:
            self._add(
                "one_d_input",
                "warn",
                f"a 1-D input [{self.sr}] raised {err}; the harness always passes [B, W], X-ARES examples accept [W]",
            )
        elif isinstance(out, torch.Tensor) and out.ndim == 3 and out.shape[0] == 1:
            self._add("one_d_input", "pass", "a 1-D input gives [1, T, D]", list(out.shape))
        else:
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            self._add("one_d_input", "warn", f"a 1-D input gives {shape}, expected [1, T, D]", shape)

    def _check_batch_invariance(self) -> None:
        short = probe_signal(self.sr, self.sr, seed=2)
        long = probe_signal(3 * self.sr, self.sr, seed=3)
        batch = torch.zeros(2, long.shape[1])
        batch[0, : short.shape[1]] = short[0]
        batch[1] = long[0]
        alone, err = _attempt(lambda: self.harness(short))
        together, err2 = _attempt(lambda: self.harness(batch))
        if err or err2:
            self._add("batch_invariance", "fail", f"forward raised {err or err2}")
            return
        t = alone.shape[1]
        if together.shape[1] < t:
            self._add("batch_invariance", "fail", f"padded batch gave {together.shape[1]} frames, alone {t}")
            return
        mine = together[0, :t]
        cos = torch.nn.functional.cosine_similarity(alone[0].double(), mine.double(), dim=-1, eps=1e-12)
        value = round(float(cos.mean()), 6)
        if value < self.opts.invariance_warn:
            self._add(
                "batch_invariance",
                "warn",
                f"a 1 s clip zero-padded in a batch with a 3 s clip: mean frame cosine {value:.4f} to the clip alone "
                f"(< {self.opts.invariance_warn}); padding leaks into its frames (a non-causal encoder; "
                "batch statistics are the batch_statistics check)",
                value,
            )
        else:
            self._add(
                "batch_invariance", "pass", f"mean frame cosine {value:.6f} between alone and padded-in-batch", value
            )

    def _check_batch_statistics(self) -> None:
        # two different clips (content and level) of equal length: nothing is padded, so any change to a
        # clip's frames from its batch neighbour comes from statistics over the batch (a batch mean,
        # BatchNorm using batch statistics, a batch-global clamp), never from padding
        n = 2 * self.sr
        clips = [probe_signal(n, self.sr, seed=7), 0.2 * probe_signal(n, self.sr, seed=8)]
        alone, err = _attempt(lambda: [self.harness(c) for c in clips])
        together, err2 = _attempt(lambda: self.harness(torch.cat(clips)))
        if err or err2:
            self._add("batch_statistics", "fail", f"forward raised {err or err2}")
            return
        if any(a.shape[1:] != together.shape[1:] for a in alone):
            shapes = [list(a.shape) for a in alone]
            self._add(
                "batch_statistics", "fail", f"alone gave {shapes}, batched {list(together.shape)} for equal lengths"
            )
            return
        rel = 0.0  # the change relative to the larger of the two outputs (an output alone may be all zeros)
        for row, a in enumerate(alone):
            ref, got = a[0].double(), together[row].double()
            rel = max(rel, float((got - ref).norm()) / max(float(ref.norm()), float(got.norm()), 1e-12))
        value = float(f"{rel:.3g}")
        what = f"two different {n / self.sr:g} s clips batched together vs each alone (no padding)"
        if rel > self.opts.batch_stats_fail:
            self._add(
                "batch_statistics",
                "fail",
                f"{what}: outputs differ by {rel:.3g} relative (> {self.opts.batch_stats_fail:g}); statistics "
                "over the batch (e.g. a batch mean, or BatchNorm on batch statistics) leak between clips, so a "
                "clip's embedding depends on its batch neighbours",
                value,
            )
        elif rel > self.opts.batch_stats_warn:
            self._add(
                "batch_statistics",
                "warn",
                f"{what}: outputs differ by {rel:.3g} relative (> {self.opts.batch_stats_warn:g}, "
                "more than float32 noise)",
                value,
            )
        else:
            self._add("batch_statistics", "pass", f"{what}: outputs differ by {rel:.3g} relative", value)

    def _check_determinism(self) -> None:
        wave = probe_signal(2 * self.sr, self.sr, seed=4, batch=2)
        a, err = _attempt(lambda: self.harness(wave))
        b, err2 = _attempt(lambda: self.harness(wave))
        if err or err2:
            self._add("determinism", "fail", f"forward raised {err or err2}")
            return
        if a.shape != b.shape:
            self._add("determinism", "fail", f"two runs gave shapes {list(a.shape)} and {list(b.shape)}")
            return
        diff = float((a - b).abs().max()) if a.numel() else 0.0
        scale = float(a.abs().max()) if a.numel() else 0.0
        if diff == 0.0:
            self._add("determinism", "pass", "two forward passes in eval mode are identical", 0.0)
        elif diff <= 1e-5 * max(scale, 1.0):
            self._add("determinism", "warn", f"two forward passes differ by up to {diff:.3g} (numerical noise)", diff)
        else:
            self._add(
                "determinism",
                "fail",
                f"two forward passes in eval mode differ by up to {diff:.3g} (output scale {scale:.3g}); "
                "scores will not be reproducible",
                diff,
            )

    def _check_long_input(self) -> None:
        seconds = self.opts.long_seconds
        wave = probe_signal(round(seconds * self.sr), self.sr, seed=5)
        input_mib = _mib(wave.numel() * wave.element_size())
        with PeakMemory(self.harness_options.device) as mem:
            start = time.perf_counter()
            out, err = _attempt(lambda: self.harness(wave))
            elapsed = time.perf_counter() - start
        # the input buffer is allocated before the measurement starts: peak_rss_mib is the encoder's own
        # use (model activations and output, through the harness), input_mib the harness's test signal
        value = {"seconds": round(elapsed, 2), "input_mib": input_mib, "peak_rss_mib": _mib(mem.peak_rss)}
        if mem.peak_cuda is not None:
            value["peak_cuda_mib"] = _mib(mem.peak_cuda)
        if err:
            self._add("long_input", "fail", f"a {seconds:g} s input raised {err}", value)
            return
        value["frames"] = out.shape[1]
        cuda = f", CUDA peak {value['peak_cuda_mib']} MiB" if mem.peak_cuda is not None else ""
        self._add(
            "long_input",
            "pass",
            f"a {seconds:g} s input ran in {elapsed:.2f} s; the encoder's peak memory +{_mib(mem.peak_rss)} MiB "
            f"on top of the {input_mib} MiB input{cuda}",
            value,
        )

    def _check_throughput(self) -> None:
        n = round(self.opts.throughput_seconds * self.sr)
        wave = probe_signal(n, self.sr, seed=6, batch=self.opts.throughput_clips)
        start = time.perf_counter()
        _, err = _attempt(lambda: self.harness(wave))
        elapsed = time.perf_counter() - start
        if err:
            self._add("throughput", "fail", f"a [{self.opts.throughput_clips}, {n}] batch raised {err}")
            return
        audio = self.opts.throughput_clips * self.opts.throughput_seconds
        speed = audio / max(elapsed, 1e-9)
        self._add(
            "throughput",
            "pass",
            f"{speed:.1f} audio-s per wall-s ({audio:g} s of audio in {elapsed:.3f} s, "
            f"{torch.get_num_threads()} thread(s), {self.harness_options.device})",
            round(speed, 2),
        )


def deep_check(
    encoder: torch.nn.Module,
    harness: HarnessOptions | None = None,
    options: DeepCheckOptions | None = None,
) -> CheckReport:
    """Run X-ARES's ten checks and the deep checks on ``encoder``; see :class:`DeepChecker`."""
    return DeepChecker(encoder, harness, options).run()
