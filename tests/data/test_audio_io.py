"""The X-ARES audio data path: decode, resample, shard reading (crops, order, workers) and writing."""

import io
import json
import os
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from xbench.data.decode import AudioDecodeError, decode_audio, pick_audio_ext
from xbench.data.resample import resample
from xbench.data.shards import (
    ClipDataset,
    ShardError,
    UnsafeShardError,
    collate_clips,
    iter_clips,
    iter_samples,
)
from xbench.data.writer import encode_audio, write_audio_shards

from conftest import FIXTURES, optional_oracle

REFERENCE = FIXTURES / "resample_reference.npz"
SR = 16000


def _pcm16(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Random int16 samples [N] or [N, C]; their float value is exactly x / 32768 after a PCM16 round trip."""
    x = np.random.default_rng(seed).integers(-20000, 20000, size=(n, channels), dtype=np.int16)
    return x[:, 0] if channels == 1 else x


def _raw_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _wav(samples: np.ndarray, sr: int = SR) -> bytes:
    return encode_audio(samples, sr, "wav")


# --------------------------------------------------------------------------------------------- decode


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_decode_lossless_from_bytes_matches_written_samples(fmt):
    pcm = _pcm16(4000, channels=2, seed=1)
    wave, sr = decode_audio(encode_audio(pcm, 22050, fmt), fmt)
    assert sr == 22050
    assert wave.dtype == torch.float32 and wave.shape == (2, 4000)  # [C, N] like webdataset.torch_audio
    np.testing.assert_array_equal(wave.numpy(), pcm.T.astype(np.float32) / 32768)


@pytest.mark.parametrize(("fmt", "subtype"), [("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_decode_lossy_from_bytes_is_close_to_written_signal(fmt, subtype):
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, SR, format=fmt.upper(), subtype=subtype)
    wave, sr = decode_audio(buf.getvalue(), fmt)
    assert sr == SR and wave.shape[0] == 1 and wave.dtype == torch.float32
    assert abs(wave.shape[1] - SR) < 0.05 * SR
    n = min(wave.shape[1], SR)
    assert np.abs(wave[0, :n].numpy() - x[:n]).max() < 0.1


def test_decode_error_names_shard_key_and_extension():
    with pytest.raises(AudioDecodeError) as err:
        decode_audio(b"this is not audio" * 10, "flac", shard="/data/train-000003.tar", key="clip42")
    message = str(err.value)
    assert "/data/train-000003.tar" in message and "'clip42'" in message and ".flac" in message
    assert err.value.key == "clip42" and err.value.shard == "/data/train-000003.tar"


@pytest.mark.parametrize("ext", ["m4a", "wma", "sox"])
def test_ffmpeg_only_formats_get_a_clear_error(ext):
    with pytest.raises(AudioDecodeError, match=rf"\.{ext} .*key 'k'.*pip install av"):
        decode_audio(b"\x00" * 1000, ext, shard="s.tar", key="k")


def test_audio_key_preference_is_xares_order():
    assert pick_audio_ext({"json", "wav", "flac"}) == "flac"
    assert pick_audio_ext({"ogg", "wav", "json"}) == "wav"
    assert pick_audio_ext({"m4a", "ogg"}) == "m4a"
    assert pick_audio_ext({"json", "txt"}) is None


# ------------------------------------------------------------------------------------------- resample


def _reference_cases():
    with np.load(REFERENCE) as z:
        names = sorted({k.split("/")[0] for k in z.files if k.endswith("/output")})
        cases = []
        for name in names:
            orig, new = (int(v) for v in z[f"{name}/rates"])
            cases.append(
                (name, z[str(z[f"{name}/input"])], z[f"{name}/output"], orig, new, json.loads(str(z[f"{name}/kwargs"])))
            )
        return cases, z["lengths"], str(z["torchaudio_version"])


def test_resample_matches_torchaudio_reference():
    """xbench.data.resample vs torchaudio.functional.resample, max abs error <= 1e-5.

    The stored numbers come from tests/fixtures/make_resample_reference.py: seeded Gaussian noise plus
    a linear chirp (float32, <= 0.2 s) resampled by torchaudio 2.11 (version kept in the npz) for
    44.1k/22.05k/48k -> 16k, 8k -> 16k up-sampling, stereo, and the Kaiser window with default and
    custom beta/width/rolloff. When torchaudio is importable the same inputs are also checked live.
    """
    cases, _, version = _reference_cases()
    assert version.startswith("2.") and len(cases) == 7
    taf = optional_oracle("torchaudio.functional")
    covered = set()
    for name, x, expected, orig, new, kwargs in cases:
        got = resample(torch.from_numpy(x), orig, new, **kwargs)
        assert got.shape == expected.shape, name
        assert float(np.abs(got.numpy() - expected).max()) <= 1e-5, name
        if taf is not None:
            live = taf.resample(torch.from_numpy(x), orig, new, **kwargs)
            assert float((got - live).abs().max()) <= 1e-5, name
        covered.add((orig, new, x.shape[0], kwargs.get("resampling_method", "sinc_interp_hann")))
    assert {(44100, 16000, 1, "sinc_interp_hann"), (22050, 16000, 1, "sinc_interp_hann")} <= covered
    assert {(48000, 16000, 1, "sinc_interp_hann"), (8000, 16000, 1, "sinc_interp_hann")} <= covered
    assert (44100, 16000, 2, "sinc_interp_hann") in covered and (44100, 16000, 1, "sinc_interp_kaiser") in covered


def test_resample_output_length_follows_torchaudio_float32_rounding():
    _, lengths, _ = _reference_cases()
    assert (44100, 16000, 180697, 65559) in {tuple(int(v) for v in row) for row in lengths}  # exact ceil: 65560
    for orig, new, n, expected in lengths:
        assert resample(torch.zeros(1, int(n)), int(orig), int(new)).shape == (1, int(expected))


def test_resample_equal_rates_is_identity_and_inputs_are_checked():
    x = torch.randn(2, 100)
    assert resample(x, 16000, 16000) is x
    assert resample(torch.randn(3, 2, 4410), 44100, 16000).shape == (3, 2, 1600)
    with pytest.raises(TypeError, match="floating point"):
        resample(torch.zeros(1, 10, dtype=torch.int16), 44100, 16000)
    with pytest.raises(ValueError, match="whole number"):
        resample(x, 44100.5, 16000)
    with pytest.raises(ValueError, match="resampling_method"):
        resample(x, 44100, 16000, resampling_method="linear")


# ------------------------------------------------------------------------------------------- writer


def _items(n: int = 5, sr: int = SR):
    for i in range(n):
        yield f"clip{i}", (_pcm16(sr // 2 + 100 * i, seed=i), sr), {"label": f"c{i % 2}", "i": i}


def test_rebuilt_shards_are_byte_identical(tmp_path):
    def build(out):
        items = list(_items(4))
        items.append(("flacclip", (encode_audio(_pcm16(3000, 2, seed=9), 22050, "flac"), "flac"), "a label"))
        items.append(("sniffed", _wav(_pcm16(2000, seed=7)), ["x", 1]))
        return write_audio_shards(out, "train-*.tar", items, maxcount=4)

    first = build(tmp_path / "a")
    second = build(tmp_path / "b")
    assert [p.name for p in first] == ["train-000000.tar", "train-000001.tar"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    with tarfile.open(first[1]) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == ["flacclip.flac", "flacclip.json", "sniffed.wav", "sniffed.json"]
    assert {(i.mtime, i.uid, i.gid, i.mode) for i in infos} == {(0, 0, 0, 0o444)}
    assert sorted(os.listdir(tmp_path / "a")) == ["train-000000.tar", "train-000001.tar"]  # no temp files left


def test_writer_sanitizes_keys_wraps_str_labels_and_splits_by_maxcount(tmp_path):
    items = [("spk1.utt.1", (_pcm16(800), SR), "happy")] + list(_items(4))
    paths = write_audio_shards(tmp_path, "fold1_%03d.tar", items, maxcount=2)
    assert [p.name for p in paths] == ["fold1_000.tar", "fold1_001.tar", "fold1_002.tar"]
    samples = [s for p in paths for s in iter_samples(p)]
    assert [s.key for s in samples] == ["spk1_utt_1", "clip0", "clip1", "clip2", "clip3"]
    assert json.loads(samples[0].members["json"]) == {"label": "happy"}


def test_writer_refuses_duplicate_keys_and_leaves_no_partial_shard(tmp_path):
    with pytest.raises(ValueError, match="duplicate sample key 'a_b'"):
        write_audio_shards(tmp_path, "x-*.tar", [("a.b", (_pcm16(10), SR), {}), ("a_b", (_pcm16(10), SR), {})], 10)

    def failing():
        yield from _items(3)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_audio_shards(tmp_path, "y-*.tar", failing(), maxcount=2)
    assert sorted(os.listdir(tmp_path)) == ["y-000000.tar"]  # the complete shard only, no temp file


# ------------------------------------------------------------------------------------------- reader


def test_iter_clips_returns_written_samples_and_meta(tmp_path):
    pcm = [_pcm16(SR // 2 + 100 * i, seed=i) for i in range(3)]
    write_audio_shards(tmp_path, "s-*.tar", [(f"k{i}", (p, SR), {"i": i}) for i, p in enumerate(pcm)], 10)
    clips = list(iter_clips(sorted(tmp_path.glob("*.tar")), SR))
    assert [c.key for c in clips] == ["k0", "k1", "k2"] == [c.source_key for c in clips]
    for i, clip in enumerate(clips):
        assert clip.meta == {"i": i} and clip.crop_index is None and clip.num_samples == len(pcm[i])
        assert clip.waveform.dtype == torch.float32 and clip.waveform.dim() == 1
        np.testing.assert_array_equal(clip.waveform.numpy(), pcm[i].astype(np.float32) / 32768)
        assert clip.shard.endswith("s-000000.tar")


def test_shards_are_read_in_sorted_order(tmp_path):
    items = [(f"k{i:02d}", (_pcm16(100, seed=i), SR), {}) for i in range(9)]
    paths = write_audio_shards(tmp_path, "part-*.tar", items, maxcount=2)
    shuffled = list(paths)
    random.Random(3).shuffle(shuffled)
    assert shuffled != paths
    assert [c.key for c in iter_clips(shuffled, SR)] == [f"k{i:02d}" for i in range(9)]


def test_resample_then_channel_mean_like_xares(tmp_path):
    pcm = _pcm16(44100 // 4, channels=2, seed=4)
    write_audio_shards(tmp_path, "s-*.tar", [("st", (pcm, 44100), {})], 10, audio_format="flac")
    (clip,) = iter_clips(tmp_path / "s-000000.tar", SR)
    x = torch.from_numpy(pcm.T.astype(np.float32) / 32768)
    expected = resample(x, 44100, SR).mean(0)
    assert clip.waveform.shape == (4000,) and clip.num_samples == 4000
    torch.testing.assert_close(clip.waveform, expected, rtol=0, atol=0)
    (stereo,) = iter_clips(tmp_path / "s-000000.tar", SR, mono=False)
    assert stereo.waveform.shape == (2, 4000)


def test_crops_have_own_keys_drop_the_tail_and_pad_short_clips(tmp_path):
    long_pcm, short_pcm, exact_pcm = _pcm16(int(2.5 * SR), seed=1), _pcm16(int(0.4 * SR), seed=2), _pcm16(2 * SR)
    items = [("long", (long_pcm, SR), {"l": 1}), ("short", (short_pcm, SR), {"l": 2}), ("exact", (exact_pcm, SR), {})]
    write_audio_shards(tmp_path, "s-*.tar", items, 10)
    clips = list(iter_clips(tmp_path / "s-000000.tar", SR, crop_length=1))
    assert [c.key for c in clips] == [
        "long#crop000",
        "long#crop001",
        "short#crop000",
        "exact#crop000",
        "exact#crop001",
    ]
    assert [c.source_key for c in clips] == ["long", "long", "short", "exact", "exact"]
    assert [c.crop_index for c in clips] == [0, 1, 0, 0, 1]
    assert [c.num_samples for c in clips] == [SR, SR, int(0.4 * SR), SR, SR]
    assert all(c.waveform.shape == (SR,) for c in clips)
    assert clips[0].meta == clips[1].meta == {"l": 1}
    long_f = long_pcm.astype(np.float32) / 32768
    np.testing.assert_array_equal(clips[1].waveform.numpy(), long_f[SR : 2 * SR])
    short = clips[2].waveform.numpy()
    np.testing.assert_array_equal(short[: int(0.4 * SR)], short_pcm.astype(np.float32) / 32768)
    assert not short[int(0.4 * SR) :].any()
    with pytest.raises(ValueError, match="whole number of samples"):
        list(iter_clips(tmp_path / "s-000000.tar", SR, crop_length=1 / 3))


def test_worker_split_reads_every_clip_once(tmp_path):
    items = [(f"k{i:02d}", (_pcm16(300 + i, seed=i), SR), {"i": i}) for i in range(11)]
    paths = write_audio_shards(tmp_path, "s-*.tar", items, maxcount=3)
    single = sorted(c.key for c in iter_clips(paths, SR, crop_length=0.01))
    assert len(single) == sum((300 + i) // 160 for i in range(11))
    dataset = ClipDataset(list(reversed(paths)), SR, crop_length=0.01)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate_clips)
    keys = [c.key for _, _, clips in loader for c in clips]
    assert sorted(keys) == single
    in_process = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=0, collate_fn=collate_clips)
    assert [c.key for _, _, clips in in_process for c in clips] == [c.key for c in iter_clips(paths, SR, 0.01)]


def test_collate_right_pads_with_zeros(tmp_path):
    items = [("a", (_pcm16(500, seed=1), SR), {}), ("b", (_pcm16(800, seed=2), SR), {})]
    write_audio_shards(tmp_path, "s-*.tar", items, 10)
    clips = list(iter_clips(tmp_path / "s-000000.tar", SR))
    waves, lengths, out = collate_clips(clips)
    assert waves.shape == (2, 800) and waves.dtype == torch.float32 and lengths.tolist() == [500, 800]
    assert out == clips
    torch.testing.assert_close(waves[0, :500], clips[0].waveform, rtol=0, atol=0)
    assert not waves[0, 500:].any()


# ------------------------------------------------------------------------------------ reader errors


def test_audio_without_json_and_json_without_audio_name_shard_and_key(tmp_path):
    wav = _wav(_pcm16(100))
    no_json = _raw_tar(tmp_path / "nojson.tar", [("a.wav", wav), ("a.json", b"{}"), ("b.wav", wav)])
    with pytest.raises(ShardError, match=r"nojson\.tar, key 'b': has a \.wav audio member but no \.json"):
        list(iter_clips(no_json, SR))
    no_audio = _raw_tar(tmp_path / "noaudio.tar", [("c.json", b"{}")])
    with pytest.raises(ShardError, match=r"noaudio\.tar, key 'c': has a json member but no audio member"):
        list(iter_clips(no_audio, SR))
    bad_json = _raw_tar(tmp_path / "badjson.tar", [("d.wav", wav), ("d.json", b"{nope")])
    with pytest.raises(ShardError, match=r"badjson\.tar, key 'd': its \.json member is not valid JSON"):
        list(iter_clips(bad_json, SR))


def test_undecodable_member_names_shard_and_key(tmp_path):
    members = [("ok.wav", _wav(_pcm16(50))), ("ok.json", b"{}"), ("zz.flac", b"junk"), ("zz.json", b"{}")]
    shard = _raw_tar(tmp_path / "bad.tar", members)
    reader = iter_clips(shard, SR)
    assert next(reader).key == "ok"
    with pytest.raises(AudioDecodeError, match=r"\.flac audio \(shard .*bad\.tar, key 'zz'\)"):
        next(reader)


@pytest.mark.parametrize("name", ["../evil.wav", "/etc/evil.wav", "a/../../evil.wav"])
def test_unsafe_member_names_are_refused(tmp_path, name):
    shard = _raw_tar(tmp_path / "unsafe.tar", [("fine.wav", _wav(_pcm16(50))), ("fine.json", b"{}"), (name, b"x")])
    with pytest.raises(UnsafeShardError, match="unsafe.tar"):
        list(iter_clips(shard, SR))


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_are_refused(tmp_path, kind):
    shard = tmp_path / "links.tar"
    with tarfile.open(shard, "w") as tar:
        info = tarfile.TarInfo("k.wav")
        info.type = kind
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(UnsafeShardError, match="is a link"):
        list(iter_samples(shard))


def test_truncated_shard_is_an_error_not_a_short_read(tmp_path):
    (path,) = write_audio_shards(tmp_path, "s-*.tar", _items(4), maxcount=10)
    with tarfile.open(path) as tar:
        third = tar.getmembers()[4].offset  # header of the third sample: a cut on a member boundary
    data = path.read_bytes()
    for cut, what in [(third, "no end-of-archive marker"), (third + 700, "unexpected end of data")]:
        cut_path = tmp_path / f"cut{cut}.tar"
        cut_path.write_bytes(data[:cut])
        with pytest.raises(ShardError, match=what):
            list(iter_clips(cut_path, SR))
