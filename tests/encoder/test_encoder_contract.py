import pytest
import torch

from xbench.encoder.contract import (
    EncoderAttributeError,
    EncoderLoadError,
    EncoderOutputError,
    HarnessedEncoder,
    HarnessOptions,
    load_encoder,
    validate_attributes,
)
from xbench.encoders.baselines import LogMelEncoder

from conftest import BROKEN, FIXTURES


def test_file_with_one_candidate_loads_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    enc = load_encoder(FIXTURES / "encoder_pkg" / "local_import_encoder.py")
    # the imported BaseModuleEncoder name does not count against the class defined in the file
    assert type(enc).__name__ == "LocalImportEncoder"
    assert enc(torch.zeros(1, 16000)).shape == (1, 50, 8)


def test_several_candidates_are_listed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EncoderLoadError) as err:
        load_encoder(str(BROKEN))
    msg = str(err.value)
    assert "several encoder candidates" in msg and "GoodEncoder" in msg and "WrongHopEncoder" in msg
    assert f"{BROKEN}:" in msg


def test_file_colon_class_picks_one():
    enc = load_encoder(f"{BROKEN}:GoodEncoder")
    assert type(enc).__name__ == "GoodEncoder"


def test_unknown_class_names_attribute_and_candidates():
    with pytest.raises(EncoderLoadError, match=r"no attribute 'Nope'.*GoodEncoder"):
        load_encoder(f"{BROKEN}:Nope")


def test_missing_file_names_path(tmp_path):
    with pytest.raises(EncoderLoadError, match="missing_encoder.py: encoder file not found"):
        load_encoder(str(tmp_path / "missing_encoder.py"))


def test_file_without_candidates(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text("import torch\n\nclass Model(torch.nn.Module):\n    pass\n")
    with pytest.raises(EncoderLoadError, match=r"plain.py: no encoder class found.*plain.py:ClassName"):
        load_encoder(path)


def test_file_that_fails_to_import(tmp_path):
    path = tmp_path / "broken_import.py"
    path.write_text("import not_a_real_module_xyz\n")
    with pytest.raises(EncoderLoadError, match=r"broken_import.py: importing the file failed: ModuleNotFoundError"):
        load_encoder(path)


def test_constructor_needing_arguments():
    with pytest.raises(EncoderLoadError, match="with no arguments"):
        load_encoder(f"{BROKEN}:NeedsArgsEncoder")


def test_zoo_name_and_module_path_and_instance():
    assert type(load_encoder("logmel")).__name__ == "LogMelEncoder"
    assert type(load_encoder("xbench.encoders.baselines:RandomProjectionEncoder")).__name__ == (
        "RandomProjectionEncoder"
    )
    enc = LogMelEncoder()
    assert load_encoder(enc) is enc


def test_unknown_zoo_name_lists_zoo():
    with pytest.raises(EncoderLoadError, match=r"neither an encoder file.*logmel"):
        load_encoder("no-such-encoder")


@pytest.mark.parametrize(
    "name, attr",
    [
        ("MissingHopEncoder", "'hop_size_in_ms' is missing"),
        ("StringRateEncoder", "'sampling_rate' must be a positive int"),
    ],
)
def test_attribute_validation_names_attribute(broken_module, name, attr):
    with pytest.raises(EncoderAttributeError, match=attr):
        validate_attributes(getattr(broken_module, name)())


def _wave(seconds, seed=0):
    return torch.randn(2, round(seconds * 16000), generator=torch.Generator().manual_seed(seed))


def test_chunking_equals_unchunked_for_frame_aligned_encoder(broken_module):
    enc = broken_module.GoodEncoder()
    wave = _wave(25)
    chunked = HarnessedEncoder(enc, HarnessOptions(chunk_seconds=10))(wave)
    whole = HarnessedEncoder(enc, HarnessOptions(chunk_seconds=None))(wave)
    assert chunked.shape == whole.shape == (2, 625, 16)
    assert torch.equal(chunked, whole)


def test_short_last_chunk_is_padded_to_one_second_and_trimmed(broken_module):
    calls = []

    class Spy(broken_module.GoodEncoder):
        def forward(self, audio):
            calls.append(audio.shape[-1])
            return super().forward(audio)

    wave = _wave(10.3)
    out = HarnessedEncoder(Spy(), HarnessOptions(chunk_seconds=10))(wave)
    assert calls == [160000, 16000]  # the 0.3 s tail went in padded to 1 s
    assert out.shape[1] == 250 + 8  # 25 frames for the padded second, ceil(25 * 0.3) = 8 kept
    whole = HarnessedEncoder(Spy(), HarnessOptions(chunk_seconds=None))(wave)
    assert torch.equal(out[:, :257], whole)


def test_short_input_is_not_padded(broken_module):
    out = HarnessedEncoder(broken_module.GoodEncoder())(_wave(0.5))
    assert out.shape == (2, 12, 16)


def test_harness_applies_eval_and_float32(broken_module):
    drop = broken_module.DropoutEncoder()
    harnessed = HarnessedEncoder(drop)
    assert not drop.training
    wave = _wave(2)
    assert torch.equal(harnessed(wave), harnessed(wave))
    out = HarnessedEncoder(broken_module.BFloat16Encoder())(wave)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert not out.requires_grad and out.is_inference()


def test_harness_switched_off_calls_encoder_as_xares(broken_module):
    drop = broken_module.DropoutEncoder()
    raw = HarnessedEncoder(drop, HarnessOptions(enabled=False))
    assert drop.training  # X-ARES never calls .eval()
    out = HarnessedEncoder(broken_module.BFloat16Encoder(), HarnessOptions(enabled=False))(_wave(1))
    assert out.dtype == torch.bfloat16
    long = raw(_wave(11))
    assert long.shape[1] == 11 * 25  # no chunking


@pytest.mark.parametrize(
    "name, message",
    [
        ("TwoDEncoder", r"shape \[2, 16\] \(2-D\), expected \[B, T, D\]"),
        ("WrongDimEncoder", "output last dimension is 16 but output_dim = 32"),
    ],
)
def test_harness_rejects_bad_output(broken_module, name, message):
    with pytest.raises(EncoderOutputError, match=message) as err:
        HarnessedEncoder(getattr(broken_module, name)())(_wave(1))
    assert name in str(err.value)
