"""How units are read and batched: decoding workers keep order and results; length buckets bound padding and
trim the frames computed from it; an out-of-memory batch is halved and retried; reduced precision runs
under autocast with float32 embeddings and its own cache key; a raw bfloat16 encoder's output is cached."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xbench.data.shards import ShardError, iter_clips
from xbench.data.writer import write_audio_shards
from xbench.embed.cache import read_unit
from xbench.embed.encode import length_batches
from xbench.embed.loader import read_clips
from xbench.encoder.contract import HarnessOptions
from xbench.pipeline.run import RunOptions, evaluate
from xbench.taskspec.config import LabelSpec, TaskConfig

from conftest import BROKEN

SR = 16000
HOP = 160


class FrameEnergyEncoder(torch.nn.Module):
    """One frame per 10 ms of input, from that hop alone (no context): a clip's frames do not depend on
    what follows it, so padding changes nothing but the number of frames."""

    sampling_rate = SR
    hop_size_in_ms = 10
    output_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([1.0, 3.0]))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = torch.nn.functional.pad(audio, (0, -audio.shape[-1] % HOP)).unflatten(-1, (-1, HOP))
        energy = frames.pow(2).mean(-1, keepdim=True)
        return (energy + 1e-3).log() * self.weight + frames.mean(-1, keepdim=True)


class OutOfMemoryAbove(FrameEnergyEncoder):
    """Raises torch's out-of-memory error on batches of more than ``limit`` clips, as CUDA does."""

    limit = 3

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (fake: batch of {audio.shape[0]})")
        return super().forward(audio)


def _items(seed: int, n: int, prefix: str):
    """Clips of 0.2-1.6 s in whole hops (so trimmed frames equal a clip's own), labels a/b by pitch."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = "ab"[i % 2]
        length = HOP * int(rng.integers(20, 100))
        t = np.arange(length) / SR
        wave = 0.3 * np.sin(2 * np.pi * (300 if label == "a" else 2000) * t) + 0.05 * rng.standard_normal(length)
        yield f"{prefix}{i:03d}", (wave.astype(np.float32), SR), {"label": label}


@pytest.fixture
def task(tmp_path):
    data = tmp_path / "data"
    for seed, (split, n) in enumerate((("b_train", 24), ("b_valid", 8), ("b_test", 8))):
        write_audio_shards(data, f"{split}-%06d.tar", _items(seed, n, split[2:4]), maxcount=12)
    return TaskConfig(
        name="buckets", domain="sound", labels=LabelSpec("class", "label", classes=("a", "b")), output_dim=2,
        train_split="b_train", valid_split="b_valid", test_split="b_test", data_dir=str(data), eval_weight=8,
        batch_size_encode=6, epochs=1,
    )  # fmt: skip


def _run(task, root, name, encoder=None, **kw):
    opts = RunOptions(
        cache_root=str(root / name), output_dir=str(root / f"{name}-out"), bootstrap_rounds=10,
        show_progress=False, tracks=("knn",), **{"workers": 0, **kw},
    )  # fmt: skip
    evaluate(encoder or FrameEnergyEncoder(), [task], opts)
    (result,) = (root / f"{name}-out").rglob("buckets@v1.json")
    units = {p.relative_to(root / name).parts[-2:]: read_unit(p) for p in sorted((root / name).rglob("*.npz"))}
    return units, json.loads(result.read_text())


def test_worker_processes_decode_in_the_same_order(tmp_path):
    paths = write_audio_shards(tmp_path, "w-%06d.tar", _items(0, 11, "w"), maxcount=4)
    shards = [str(p) for p in paths]
    for crop in (None, 0.3):
        alone = list(iter_clips(shards, SR, crop))
        for workers in (1, 2):
            clips = list(read_clips(shards, SR, crop, workers))
            assert [c.key for c in clips] == [c.key for c in alone]
            assert all(torch.equal(a.waveform, b.waveform) for a, b in zip(clips, alone, strict=True))


def test_a_bad_sample_in_a_worker_is_the_same_error(tmp_path):
    items = list(_items(0, 5, "n"))
    bad = items[3][1][0].copy()
    bad[10] = np.nan
    items[3] = (items[3][0], (bad, SR), items[3][2])
    (path,) = write_audio_shards(tmp_path, "n-%06d.tar", items, maxcount=10, subtype="FLOAT")
    with pytest.raises(ShardError, match="key 'n003'.*NaN") as in_process:
        list(read_clips([str(path)], SR, None, 0))
    with pytest.raises(ShardError, match="key 'n003'.*NaN") as in_worker:
        list(read_clips([str(path)], SR, None, 2))
    assert str(in_worker.value) == str(in_process.value) and in_worker.value.shard == in_process.value.shard


def test_workers_give_the_same_units_and_results(task, tmp_path):
    one, result_one = _run(task, tmp_path, "w0", workers=0)
    two, result_two = _run(task, tmp_path, "w2", workers=2)
    assert one.keys() == two.keys() and len(one) == 4
    for key in one:
        assert one[key].keys == two[key].keys and one[key].frames.tobytes() == two[key].frames.tobytes()
    assert result_one["tracks"] == result_two["tracks"]


def test_length_buckets_bound_padding_and_keep_every_clip():
    class C:
        def __init__(self, n):
            self.num_samples = n

    lengths = [100, 96, 100, 50, 49, 100, 98, 51, 200, 10]
    clips = [C(n) for n in lengths]
    exact = list(length_batches(clips, 4, 0.0))
    assert all(len({c.num_samples for _, c in b}) == 1 for b in exact)  # equal lengths only
    assert sorted(p for b in exact for p, _ in b) == list(range(len(lengths)))
    assert [len(b) for b in exact] == [1, 3, 1, 1, 1, 1, 1, 1]
    for share in (0.05, 0.3):
        batches = list(length_batches(clips, 4, share))
        assert sorted(p for b in batches for p, _ in b) == list(range(len(lengths)))
        for batch in batches:
            longest = max(c.num_samples for _, c in batch)
            assert len(batch) <= 4 and longest == batch[0][1].num_samples
            assert sum(longest - c.num_samples for _, c in batch) <= share * longest * len(batch)
    assert len(list(length_batches(clips, 4, 0.05))) == 5  # [200], [100 x3, 98], [96], [51, 50, 49], [10]

    pulled = []

    def stream():
        for i, clip in enumerate([C(7)] * 4 + [C(3)] * 300):
            pulled.append(i)
            yield clip

    first = next(length_batches(stream(), 4, 0.0))  # equal lengths: a full batch leaves at once
    assert [p for p, _ in first] == [0, 1, 2, 3] and len(pulled) == 4


def test_buckets_trim_padding_frames_and_change_no_frame_of_a_context_free_encoder(task, tmp_path):
    exact, exact_result = _run(task, tmp_path, "exact")
    padded, padded_result = _run(task, tmp_path, "padded", max_padding=0.5)
    assert exact.keys() == padded.keys()
    for key in exact:
        assert exact[key].keys == padded[key].keys
        np.testing.assert_array_equal(np.diff(exact[key].offsets), np.diff(padded[key].offsets))  # frames trimmed
        np.testing.assert_allclose(exact[key].frames, padded[key].frames, rtol=1e-3, atol=1e-3)
    before, after = exact_result["embed"], padded_result["embed"]
    assert before["padding_share"] == 0 and 0 < after["padding_share"] <= 0.5
    assert after["clips_per_call"] > 2 * before["clips_per_call"]  # far fewer encoder calls on varied lengths
    assert exact_result["cache_keys"] != padded_result["cache_keys"]  # buckets with padding enter the key


def test_an_out_of_memory_batch_is_halved_and_retried(task, tmp_path):
    halved, result = _run(task, tmp_path, "oom", OutOfMemoryAbove(), batch_size=6, max_padding=0.5)
    stats = [json.loads(p.read_text())["embed_stats"] for p in (tmp_path / "oom").rglob("*.done.json")]
    assert {s["oom_batch_size"] for s in stats} - {None} == {3} and result["embed"]["oom_batch_size"] == 3
    assert all(s["forward_calls"] >= s["clips"] / 3 for s in stats)  # no call of more than 3 clips succeeded
    small, _ = _run(task, tmp_path, "small", FrameEnergyEncoder(), batch_size=3, max_padding=0.5)
    for key in halved:  # each part padded to its whole batch's width: within the float noise of batching
        np.testing.assert_allclose(halved[key].frames, small[key].frames, rtol=1e-3, atol=1e-3)
    OutOfMemoryAbove.limit = 0
    try:
        with pytest.raises(torch.OutOfMemoryError):
            _run(task, tmp_path, "hopeless", OutOfMemoryAbove(), batch_size=6)
    finally:
        OutOfMemoryAbove.limit = 3


def test_bf16_precision_runs_under_autocast_with_float32_embeddings_and_its_own_key(task, tmp_path):
    fp32, fp32_result = _run(task, tmp_path, "fp32")
    bf16, bf16_result = _run(task, tmp_path, "bf16", harness=HarnessOptions(precision="bf16"))
    assert bf16_result["encoder_slug"] != fp32_result["encoder_slug"]
    assert bf16_result["encoder"]["options"]["precision"] == "bf16"
    assert bf16_result["compute"]["precision"] == "bf16" and fp32_result["compute"]["precision"] == "fp32"
    assert bf16_result["compute"]["peak_memory"]["host_rss_mib"] > 0
    assert fp32_result["compute"]["threads"] == torch.get_num_threads()
    for key in fp32:
        assert bf16[key].pooled.dtype == np.float32
        np.testing.assert_allclose(bf16[key].pooled, fp32[key].pooled, rtol=0.05, atol=0.05)


def test_a_raw_bfloat16_encoder_is_cached_as_float32(task, tmp_path):
    from xbench.encoder.contract import _import_file

    encoder = _import_file(BROKEN).BFloat16Encoder()
    units, _ = _run(task, tmp_path, "raw", encoder, harness=HarnessOptions(enabled=False))
    assert all(u.pooled.dtype == np.float32 and np.isfinite(u.pooled).all() for u in units.values())


def test_workers_are_forked_whatever_the_default_start_method(tmp_path, monkeypatch):
    """A spawned worker would import torch and xbench again for every unit (seconds each): where the platform
    has fork, the loader forks, also inside a process whose default is spawn (a spawned child, macOS)."""
    import multiprocessing

    from xbench.embed import loader

    (path,) = write_audio_shards(tmp_path, "f-%06d.tar", _items(0, 3, "f"), maxcount=10)
    seen = {}
    real = torch.utils.data.DataLoader

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.utils.data, "DataLoader", spy)
    assert len(list(read_clips([str(path)], SR, None, 1))) == 3
    fork = "fork" in multiprocessing.get_all_start_methods()
    assert seen["multiprocessing_context"] == ("fork" if fork else None)
    assert loader.default_workers() >= 0 and (fork or loader.default_workers() == 0)
