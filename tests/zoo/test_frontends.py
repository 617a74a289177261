"""Front-ends in plain torch against torchaudio: a stored reference always, live torchaudio when importable."""

import json

import numpy as np
import pytest
import torch

from xbench.encoders.frontends import MelSpectrogram, amplitude_to_db, kaldi_fbank, kaldi_frames

from conftest import FIXTURES, require_oracle

REF = np.load(FIXTURES / "frontend_reference.npz")
TOL = 1e-4  # dB (mel) and log-energy units (fbank)


def _torchaudio():
    return require_oracle("torchaudio.compliance.kaldi"), require_oracle("torchaudio.transforms")


def _dasheng_mel(x: torch.Tensor) -> torch.Tensor:
    mel = MelSpectrogram(16000, n_fft=512, win_length=512, hop_length=160, f_min=0, f_max=8000, n_mels=64)
    return mel(x)


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def test_reference_records_versions():
    versions = json.loads(str(REF["versions"]))
    assert {"torch", "torchaudio"} <= set(versions)


def test_dasheng_mel_db_per_clip_and_batch_global_match_stored_reference():
    x = torch.from_numpy(REF["signals"])
    spec = _dasheng_mel(x)
    clip = amplitude_to_db(spec, top_db=120.0, per_example=True)
    batch = amplitude_to_db(spec, top_db=120.0, per_example=False)
    assert _max_diff(clip, REF["mel_db_clip"]) <= TOL
    assert _max_diff(batch, REF["mel_db_batch"]) <= TOL
    # the quiet clip (index 1) is where the two clamps differ: its floor follows the loud clip in a batch
    assert _max_diff(REF["mel_db_clip"][1], REF["mel_db_batch"][1]) > 10.0
    assert clip[1].min() < batch[1].min()


@pytest.mark.parametrize(
    "key, kwargs, scale",
    [
        ("fbank80_zipformer", dict(num_mel_bins=80, snip_edges=False, high_freq=-400.0), 1.0),
        ("fbank128_beats", dict(num_mel_bins=128, frame_length=25.0, frame_shift=10.0), 2.0**15),
    ],
)
def test_kaldi_fbank_matches_stored_reference(key, kwargs, scale):
    x = torch.from_numpy(REF["signals"]) * scale
    batched = kaldi_fbank(x, **kwargs)
    assert batched.shape == REF[key].shape
    assert _assert_log_energies_close(batched, REF[key]) > 0.5  # most bins held to the tight tolerance
    single = kaldi_fbank(x[2], **kwargs)  # 1-D input gives [frames, bins]
    _assert_log_energies_close(single, REF[key][2])


def _assert_log_energies_close(ours, ref) -> float:
    """Log mel energies equal to :data:`TOL` in every bin within 60 dB of its frame's loudest, and the energies of
    quieter bins equal to 1e-6 of that loudest bin's: the FFT's float32 rounding differs between CPUs (the stored
    reference came from another machine), and the log magnifies it where a bin holds almost nothing (a bin 18
    nats below its frame's peak differed by 9e-4 on an AVX2 machine, while live torchaudio there agrees to 0.0).
    Returns the share of bins held to :data:`TOL`."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    peak = ref.max(axis=-1, keepdims=True)
    loud = ref >= peak - np.log(1e6)
    assert np.abs(ours - ref)[loud].max() <= TOL
    assert (np.abs(np.exp(ours - peak) - np.exp(ref - peak))).max() <= 1e-6
    return float(loud.mean())


def test_frame_counts():
    x = torch.zeros(2, 16000)
    assert kaldi_fbank(x, 128).shape == (2, 98, 128)  # snip_edges: 1 + (16000 - 400) // 160
    assert kaldi_fbank(x, 80, snip_edges=False).shape == (2, 100, 80)  # (16000 + 80) // 160
    assert kaldi_fbank(x, 23, use_energy=True).shape[-1] == 24
    with pytest.raises(ValueError, match="shorter than"):
        kaldi_frames(torch.zeros(100), 400, 160, snip_edges=True)


def test_mel_db_matches_live_torchaudio():
    _, transforms = _torchaudio()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 12345, generator=gen) * torch.tensor([[1.0], [1e-3], [0.1]])
    x[1, 6000:] = 0.0
    spec = _dasheng_mel(x)
    ta_mel = transforms.MelSpectrogram(
        sample_rate=16000, n_fft=512, win_length=512, hop_length=160, f_min=0, f_max=8000, n_mels=64
    )
    to_db = transforms.AmplitudeToDB(top_db=120)
    assert _max_diff(spec, ta_mel(x)) <= 1e-3 * float(spec.abs().max())
    assert _max_diff(amplitude_to_db(spec, top_db=120.0, per_example=False), to_db(ta_mel(x))) <= TOL
    per_clip = torch.cat([to_db(ta_mel(x[i : i + 1])) for i in range(3)])
    assert _max_diff(amplitude_to_db(spec, top_db=120.0), per_clip) <= TOL


@pytest.mark.parametrize("num_mel_bins", [23, 80, 128])
@pytest.mark.parametrize("snip_edges", [True, False])
@pytest.mark.parametrize("high_freq", [0.0, -400.0, 7600.0])
def test_kaldi_fbank_matches_live_torchaudio(num_mel_bins, snip_edges, high_freq):
    kaldi, _ = _torchaudio()
    gen = torch.Generator().manual_seed(num_mel_bins)
    x = torch.randn(2, 8000 + 37, generator=gen) * 3000.0
    kwargs = dict(num_mel_bins=num_mel_bins, snip_edges=snip_edges, high_freq=high_freq)
    mine = kaldi_fbank(x, **kwargs)
    for i in range(2):
        assert _max_diff(mine[i], kaldi.fbank(x[i : i + 1], **kwargs)) <= TOL


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(use_energy=True),
        dict(use_energy=True, htk_compat=True, raw_energy=False),
        dict(use_power=False, window_type="hamming"),
        dict(window_type="blackman", preemphasis_coefficient=0.0, remove_dc_offset=False),
        dict(window_type="rectangular", round_to_power_of_two=False, frame_length=20.0),
        dict(window_type="hanning", subtract_mean=True, low_freq=100.0),
        dict(use_log_fbank=False),
    ],
)
def test_kaldi_fbank_options_match_live_torchaudio(kwargs):
    kaldi, _ = _torchaudio()
    x = torch.randn(1, 4000, generator=torch.Generator().manual_seed(1)) * 100.0
    ref = kaldi.fbank(x, num_mel_bins=40, **kwargs)
    mine = kaldi_fbank(x, 40, **kwargs)[0]
    scale = 1.0 if kwargs.get("use_log_fbank", True) else float(ref.abs().max())
    assert _max_diff(mine, ref) <= TOL * scale


def test_kaldi_fbank_builds_its_window_and_mel_banks_once_per_setting(monkeypatch):
    """The window and the mel banks are built (and moved to the input's device) once per setting, not per call."""
    import xbench.encoders.frontends as fe

    fe._fbank_constants.cache_clear()
    built = []
    real_window, real_banks = fe.kaldi_window, fe.kaldi_mel_banks
    monkeypatch.setattr(fe, "kaldi_window", lambda *a, **k: built.append("window") or real_window(*a, **k))
    monkeypatch.setattr(fe, "kaldi_mel_banks", lambda *a, **k: built.append("banks") or real_banks(*a, **k))
    wave = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    first = kaldi_fbank(wave, 64)
    for _ in range(3):
        again = kaldi_fbank(wave, 64)
    assert built == ["window", "banks"] and torch.equal(first, again)
    kaldi_fbank(wave, 80)  # another setting: built for it once
    assert built == ["window", "banks"] * 2
