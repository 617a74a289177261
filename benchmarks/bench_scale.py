"""Scaling the embed stage: more embedding processes, decoding workers, and length buckets.

Three ratios, each measured in one run, one thread per process:

(a) embed-stage speed-up of 2 embedding processes over 1 on a CPU-bound encoder (the benchmark's ViT-B of
    ``bench_run_overhead.py``): the processes share one cache and split its units by claims, as torchrun ranks
    or SLURM jobs do. Also 1 decoding worker (``--workers 1``) over decoding in the embedding process, with a
    cheap encoder (log-mel) on 44.1 kHz FLAC shards, where decoding and resampling to 16 kHz are the work.
    Each setting runs ``--repeats`` times, alternating; medians.
(b) whole run / encoder forward on ``bench_run_overhead.py``'s ViT-B task (112 clips of 5 s), the forward
    timed inside the run (the encoder's own calls, so both sides see the same machine load), medians of
    ``--repeats`` runs; and, as that script does, against the encoder alone on the same batches, alternating
    (on a shared machine one pair of such timings moves by +-15 % or more).
(c) clips per encoder call and padding share on a variable-length task (clips of 0.5-10 s, uniformly) before
    and after length bucketing (``--max-padding``), read from the results' ``embed`` record.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py [--clips 128] [--bucket-clips 256] [--only a|b|c]

A machine with fewer free cores than processes cannot show (a)'s speed-up: the script measures the ceiling the
machine allows at that moment, two processes of pure matrix products over one (alternating with the embed runs),
and prints the embed speed-up against it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_run_overhead import VitBaseEncoder  # noqa: E402
from bench_run_overhead import make_task as make_vit_task  # noqa: E402

from xbench.data.shards import iter_clips  # noqa: E402
from xbench.data.writer import write_audio_shards  # noqa: E402
from xbench.encoders.baselines import LogMelEncoder  # noqa: E402
from xbench.pipeline.run import RunOptions, evaluate  # noqa: E402
from xbench.taskspec.config import LabelSpec, TaskConfig  # noqa: E402

SR = 16000


def make_task(root: Path, name: str, clips: int, rate: int, seconds: tuple[float, float], per_shard: int) -> TaskConfig:
    """Train/valid/test shards of ``clips`` tone clips (4 classes) of ``seconds`` (min, max) at ``rate`` Hz."""
    rng = np.random.default_rng(0)
    sizes = {f"{name}_train": clips * 4 // 7, f"{name}_valid": clips // 7}
    sizes[f"{name}_test"] = clips - sum(sizes.values())
    for split, n in sizes.items():
        items = []
        for i in range(n):
            label = i % 4
            t = np.arange(int(rng.uniform(*seconds) * rate)) / rate
            x = 0.3 * np.sin(2 * np.pi * (200 + 300 * label) * t) + 0.1 * rng.standard_normal(t.size)
            items.append((f"{split}{i:04d}", (x.astype(np.float32), rate), {"label": str(label)}))
        write_audio_shards(root, f"{split}-%06d.tar", items, maxcount=per_shard, audio_format="flac", subtype=None)
    return TaskConfig(
        name=name, domain="sound", labels=LabelSpec("class", "label", classes=("0", "1", "2", "3")), output_dim=4,
        train_split=f"{name}_train", valid_split=f"{name}_valid", test_split=f"{name}_test", data_dir=str(root),
        eval_weight=sizes[f"{name}_test"], batch_size_encode=16,
    )  # fmt: skip


def _embed(task: TaskConfig, cache: str, workers: int, vit: bool, ready: Any, done: Any) -> None:
    """One embedding process: build the encoder, meet the others, embed what it can claim."""
    torch.set_num_threads(1)
    encoder = VitBaseEncoder() if vit else LogMelEncoder()
    ready.wait()
    evaluate(encoder, [task], RunOptions(cache_root=cache, stage="embed", workers=workers, show_progress=False))
    done.put(time.time())


def _wall(processes: int, target: Any, *args: Any) -> float:
    """Wall time from a common start (every process imported and set up: ``target(*args, ready, done)``
    waits on ``ready``) until the last one puts its end time in ``done``."""
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Barrier(processes + 1), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, ready, done)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    ready.wait()
    start = time.time()
    ends = [done.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join()
    if any(proc.exitcode for proc in procs):
        raise RuntimeError("a benchmark process failed")
    return max(ends) - start


def embed_wall(task: TaskConfig, cache: Path, processes: int, workers: int, vit: bool) -> float:
    """Embed-stage wall time of ``processes`` embedding processes sharing the cache ``cache``."""
    return _wall(processes, _embed, task, str(cache), workers, vit)


def _products(ready: Any, done: Any) -> None:
    torch.set_num_threads(1)
    a = torch.randn(768, 768, generator=torch.Generator().manual_seed(0))
    ready.wait()
    for _ in range(300):
        a @ a
    done.put(time.time())


def compute_wall(processes: int) -> float:
    """Wall time of ``processes`` processes doing the same fixed amount of matrix products each."""
    return _wall(processes, _products)


def _medians(root: Path, task: TaskConfig, settings: dict[str, tuple[int, int, bool]], repeats: int) -> dict:
    """Median wall per setting ``name: (processes, workers, vit)``, the settings alternating; ``vit`` None: the
    machine's ceiling (matrix products in ``processes`` processes)."""
    walls: dict[str, list[float]] = {name: [] for name in settings}
    for rep in range(repeats):
        for name, (processes, workers, vit) in settings.items():
            if vit is None:
                walls[name].append(compute_wall(processes))
            else:
                walls[name].append(embed_wall(task, root / f"cache-{name}-{rep}", processes, workers, vit))
    return {name: statistics.median(values) for name, values in walls.items()}


def bench_processes(root: Path, clips: int, repeats: int) -> None:
    task = make_task(root / "a", "scale", clips, 44100, (5.0, 5.0), per_shard=4)
    settings = {"one": (1, 0, True), "two": (2, 0, True), "ceiling-1": (1, 0, None), "ceiling-2": (2, 0, None)}
    walls = _medians(root, task, settings, repeats)
    one, two = walls["one"], walls["two"]
    # the same work in 2 processes as in 1 at full speed takes as long: throughput ratio = 2 x wall(1) / wall(2)
    ceiling = 2 * walls["ceiling-1"] / walls["ceiling-2"]
    print(f"(a) embed stage, ViT-B, {clips} clips x 5 s, one thread per process (CPUs usable: {_cpus()})")
    print(f"    1 process {one:7.2f} s   2 processes {two:7.2f} s   speed-up {one / two:5.2f}x (target >= 1.8)")
    print(f"    this machine's ceiling now (matrix products, 2 processes over 1): {ceiling:5.2f}x; the embed speed-up "
          f"is {one / two / ceiling:5.1%} of it")  # fmt: skip
    task = make_task(root / "w", "decode", 8 * clips, 44100, (5.0, 5.0), per_shard=64)
    walls = _medians(root, task, {"inline": (1, 0, False), "worker": (1, 1, False)}, repeats)
    inline, worker = walls["inline"], walls["worker"]
    print(f"    log-mel, {8 * clips} clips of 44.1 kHz FLAC: decoding in the embedding process {inline:6.2f} s, "
          f"in 1 worker {worker:6.2f} s, speed-up {inline / worker:5.2f}x")  # fmt: skip


class TimedVitBase(VitBaseEncoder):
    """The benchmark's ViT-B, adding up the time of its own forward calls."""

    forward_s = 0.0

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = super().forward(audio)
        TimedVitBase.forward_s += time.perf_counter() - start
        return out


def bench_overhead(root: Path, repeats: int) -> None:
    task = make_vit_task(root / "b", 112)
    encoder = TimedVitBase().eval()
    shards = sorted(str(p) for p in (root / "b").glob("*.tar"))
    batches = list(torch.stack([c.waveform for c in iter_clips(shards, SR)]).split(task.batch_size_encode))
    whole, inside, alone = [], [], []
    for rep in range(repeats):
        opts = RunOptions(cache_root=str(root / f"b{rep}"), output_dir=str(root / f"out-b{rep}"), show_progress=False)
        TimedVitBase.forward_s = 0.0
        start = time.perf_counter()
        evaluate(encoder, [task], opts)
        whole.append(time.perf_counter() - start)
        inside.append(TimedVitBase.forward_s)
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:  # the same clips in the same batches of equal-length clips, no harness
                encoder(batch)
        alone.append(time.perf_counter() - start)
    ratios = [w / f for w, f in zip(whole, inside, strict=True)]
    run_s, forward_s = statistics.median(whole), statistics.median(alone)
    print(f"(b) ViT-B, 112 clips x 5 s, one thread, {repeats} runs: whole run / its encoder forward time, median "
          f"{statistics.median(ratios):5.3f} (runs {', '.join(f'{r:.3f}' for r in ratios)}; target <= 1.10)")
    print(f"    medians: whole run {run_s:7.2f} s, encoder alone {forward_s:7.2f} s, ratio {run_s / forward_s:5.3f}")


def bench_buckets(root: Path, clips: int) -> None:
    task = make_task(root / "c", "buckets", clips, SR, (0.5, 10.0), per_shard=64)
    print(f"(c) clips per encoder call, {clips} clips of 0.5-10 s, batch size {task.batch_size_encode}")
    for share in (0.0, 0.05, 0.1, 0.2):
        out = root / f"out-{share}"
        opts = RunOptions(
            cache_root=str(root / f"cache-{share}"), output_dir=str(out), max_padding=share, workers=0,
            tracks=("knn",), bootstrap_rounds=10, show_progress=False,
        )  # fmt: skip
        start = time.perf_counter()
        evaluate(LogMelEncoder(), [task], opts)
        wall = time.perf_counter() - start
        (path,) = out.rglob("buckets@v1.json")
        result = json.loads(path.read_text())
        embed, knn = result["embed"], result["tracks"]["knn"]["score"]
        print(f"    --max-padding {share:4.2f}: {embed['forward_calls']:4d} calls, {embed['clips_per_call']:6.2f} "
              f"clips per call, padding {100 * embed['padding_share']:5.2f} %, kNN score {knn:.4f}, "
              f"run {wall:6.2f} s")  # fmt: skip


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=128, help="clips of (a) (fewer: the start weighs more)")
    parser.add_argument("--bucket-clips", type=int, default=256, help="clips of (c)")
    parser.add_argument("--only", choices=("a", "b", "c"), default=None)
    parser.add_argument("--repeats", type=int, default=3, help="(a), (b): runs of each setting, alternating")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "a"):
            bench_processes(Path(tmp), args.clips, args.repeats)
        if args.only in (None, "b"):
            bench_overhead(Path(tmp), args.repeats)
        if args.only in (None, "c"):
            bench_buckets(Path(tmp), args.bucket_clips)


if __name__ == "__main__":
    main()
