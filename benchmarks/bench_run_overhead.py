"""Harness overhead of a whole `xbench.pipeline.run` run against the encoder's own forward time.

Generates X-ARES-format shards (train/valid/test, 5 s clips at 16 kHz), runs a ViT-base-sized
random encoder (log-mel → 64×4 patches → 12-layer, 768-d transformer; ~85 M parameters, 40 ms hop)
through a full run (embed + MLP + kNN + bootstrap, fresh cache), then times the encoder alone on the
same clips in the same batches. Prints (whole-run wall) / (encoder forward alone) and each stage's
share. One thread by default, so the ratio is stable on a shared machine:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_run_overhead.py [--clips 112] [--threads 1] [--out FILE]

The run scores the default protocol (the MLP averaged over 5 probe seeds, trained together). Then the
scoring stage alone is repeated from the cache (``--score-repeats`` times, alternating) with the default
5 seeds and with one probe (``probe_seeds=1``), and the ratio of their median scoring times is printed:
the cost of the seed-averaged MLP relative to one probe.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from xbench.core.atomic_io import atomic_write_json
from xbench.data.shards import iter_clips
from xbench.data.writer import write_audio_shards
from xbench.encoders.frontends import MelSpectrogram
from xbench.pipeline.run import RunOptions, evaluate
from xbench.probes.multiseed import DEFAULT_PROBE_SEEDS
from xbench.taskspec.config import LabelSpec, TaskConfig

SR = 16000


class VitBaseEncoder(torch.nn.Module):
    """A Dasheng-shaped ViT-B with random weights (the benchmark's stand-in for a real model)."""

    sampling_rate = SR
    hop_size_in_ms = 40
    output_dim = 768

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mel = MelSpectrogram(SR, n_fft=512, win_length=512, hop_length=160, n_mels=64)
        self.patch = torch.nn.Conv2d(1, 768, kernel_size=(64, 4), stride=(64, 4))
        layer = torch.nn.TransformerEncoderLayer(
            768, 12, 3072, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = torch.nn.TransformerEncoder(layer, 12, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(768)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = torch.log(self.mel(audio) + 1e-6).unsqueeze(1)
        x = self.patch(x).flatten(2).transpose(1, 2)
        return self.norm(self.blocks(x))


def make_task(root: Path, clips: int) -> TaskConfig:
    rng = np.random.default_rng(0)
    sizes = {"bench_train": clips * 4 // 7, "bench_valid": clips // 7, "bench_test": clips - clips * 5 // 7}
    for split, n in sizes.items():
        items = []
        for i in range(n):
            label = i % 4
            t = np.arange(5 * SR) / SR
            x = 0.3 * np.sin(2 * np.pi * (200 + 300 * label) * t) + 0.1 * rng.standard_normal(t.size)
            items.append((f"{split}{i:04d}", (x.astype(np.float32), SR), {"label": str(label)}))
        write_audio_shards(root, f"{split}-%06d.tar", items, maxcount=64)
    return TaskConfig(
        name="bench_overhead",
        domain="sound",
        labels=LabelSpec("class", "label", classes=("0", "1", "2", "3")),
        output_dim=4,
        train_split="bench_train",
        valid_split="bench_valid",
        test_split="bench_test",
        data_dir=str(root),
        eval_weight=sizes["bench_test"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=112)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--score-repeats", type=int, default=5, help="scoring-only reruns per probe-seed setting")
    parser.add_argument("--out", type=Path, help="also write the measurements as JSON here (results/run_overhead.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        task = make_task(tmp / "data", args.clips)
        encoder = VitBaseEncoder()
        opts = RunOptions(cache_root=str(tmp / "cache"), output_dir=str(tmp / "out"), show_progress=False)
        start = time.perf_counter()
        evaluate(encoder, [task], opts)
        whole = time.perf_counter() - start
        (result_file,) = (tmp / "out").rglob("bench_overhead@v1.json")
        timings = json.loads(result_file.read_text())["timings"]
        score_s = score_only(encoder, task, tmp, args.score_repeats)

        # the encoder alone: same clips, same batches (16 equal-length clips), no harness
        shards = sorted(str(p) for p in (tmp / "data").glob("*.tar"))
        waves = [c.waveform for c in iter_clips(shards, SR)]
        encoder.eval()
        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(waves), task.batch_size_encode):
                encoder(torch.stack(waves[i : i + task.batch_size_encode]))
        alone = time.perf_counter() - start

    audio_s = len(waves) * 5
    rest = whole - timings["embed_s"] - timings["load_s"] - timings["score_s"]
    print(f"clips: {len(waves)} x 5 s ({audio_s} audio-s), threads: {args.threads}")
    print(f"encoder forward alone: {alone:8.2f} s  ({audio_s / alone:.1f} audio-s/s)")
    print(f"whole run            : {whole:8.2f} s")
    print(f"ratio whole / encoder: {whole / alone:8.3f}   (target <= 1.15, required <= 1.3)")
    print("stage shares of the whole run:")
    for name, value in [
        ("embed (decode+encode+cache write)", timings["embed_s"]),
        ("load cache", timings["load_s"]),
        ("score (MLP+kNN+bootstrap)", timings["score_s"]),
        ("setup (identity, planning)", rest),
    ]:
        print(f"  {name:36s} {value:7.2f} s  {100 * value / whole:5.1f} %")
    many, one = score_s[None], score_s[1]
    print(f"scoring alone from the warm cache, median of {args.score_repeats} (the run's score above includes")
    print(f"one-time imports): default ({DEFAULT_PROBE_SEEDS} probe seeds) {many:.3f} s, one probe {one:.3f} s, "
          f"ratio {many / one:.3f} (target <= 1.2)")
    if args.out:
        measured = {
            "clips": len(waves),
            "clip_seconds": 5,
            "threads": args.threads,
            "encoder_alone_s": round(alone, 3),
            "whole_run_s": round(whole, 3),
            "whole_over_encoder": round(whole / alone, 4),
            "stages_s": {k: round(v, 3) for k, v in timings.items()} | {"setup_s": round(rest, 3)},
            "score_repeats": args.score_repeats,
            "score_only_median_s": {f"{DEFAULT_PROBE_SEEDS}_seeds": round(many, 4), "1_probe": round(one, 4)},
            "seeds_over_one_probe": round(many / one, 4),
            "torch": torch.__version__,
        }
        atomic_write_json(args.out, measured)
        print(f"written: {args.out}")


def score_only(encoder: torch.nn.Module, task: TaskConfig, tmp: Path, repeats: int) -> dict[int | None, float]:
    """Median scoring time (``score_s``) from the warm cache: {None: the default probe seeds, 1: one probe}."""
    times: dict[int | None, list[float]] = {None: [], 1: []}
    for i in range(repeats):
        for seeds in times:  # alternating, so both see the same machine load
            out = tmp / f"score-{seeds}-{i}"
            opts = RunOptions(cache_root=str(tmp / "cache"), output_dir=str(out), show_progress=False)
            evaluate(encoder, [task], replace(opts, probe_seeds=seeds))
            (result_file,) = out.rglob("bench_overhead@v1.json")
            times[seeds].append(json.loads(result_file.read_text())["timings"]["score_s"])
    return {seeds: statistics.median(values) for seeds, values in times.items()}


if __name__ == "__main__":
    main()
