import inspect
import logging

import pytest
import torch

from xbench.encoder.contract import _import_file
from xbench.encoder.xares_checker import XARES_CHECK_NAMES, check_audio_encoder, main, xares_checks
from xbench.encoders.baselines import LogMelEncoder, RandomProjectionEncoder

from conftest import BROKEN, require_oracle

MODULE = _import_file(BROKEN)
CLASSES = {
    name: cls
    for name, cls in vars(MODULE).items()
    if inspect.isclass(cls)
    and issubclass(cls, torch.nn.Module)
    and not name.startswith("_")
    and name != "NeedsArgsEncoder"
}
CLASSES["LogMelEncoder"] = LogMelEncoder
CLASSES["RandomProjectionEncoder"] = RandomProjectionEncoder

# X-ARES 0.1.3's verdicts, pinned (and checked against the real package below).
EXPECTED = {
    "GoodEncoder": True,
    "WrongDimEncoder": False,
    "ZeroFramesEncoder": True,  # X-ARES does not check T' > 0
    "NaNEncoder": True,
    "BFloat16Encoder": True,
    "TwoDEncoder": False,
    "ShortInputRaisesEncoder": True,  # its probe input is 50000 samples
    "WrongHopEncoder": True,
    "BatchDependentEncoder": True,
    "BatchMeanEncoder": True,  # X-ARES runs one batch: batch statistics go unseen
    "BatchNormStatsEncoder": True,
    "PaddingSensitiveEncoder": True,
    "MissingHopEncoder": False,
    "StringRateEncoder": True,
    "NoisyEncoder": True,
    "DropoutEncoder": True,
    "FramesModel": False,
    "LogMelEncoder": True,
    "RandomProjectionEncoder": True,
}


def test_every_fixture_has_a_pinned_verdict():
    assert set(CLASSES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pinned_verdicts(name):
    assert check_audio_encoder(CLASSES[name]()) is EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_verdict_as_xares_package(name):
    xares_checker = require_oracle("xares.audio_encoder_checker")
    assert check_audio_encoder(CLASSES[name]()) is xares_checker.check_audio_encoder(CLASSES[name]())


def test_first_failure_is_logged_and_later_checks_skipped(caplog):
    with caplog.at_level(logging.ERROR, logger="xbench.encoder.xares_checker"):
        assert not check_audio_encoder(CLASSES["WrongDimEncoder"]())
    assert "Expected output_dim=32 for encoded_audio, got 16" in caplog.text
    results = xares_checks(CLASSES["MissingHopEncoder"]())
    assert [r.name for r in results] == list(XARES_CHECK_NAMES)
    assert [r.status for r in results] == ["pass"] * 4 + ["fail"] + ["skip"] * 5


def test_missing_hop_prints_help(capsys):
    assert not check_audio_encoder(CLASSES["MissingHopEncoder"]())
    assert "hop_size_in_ms determines the time shift" in capsys.readouterr().out


def test_command_line(capsys):
    assert main([f"{BROKEN}:GoodEncoder"]) == 0
    assert main([f"{BROKEN}:TwoDEncoder"]) == 1
    assert main([f"{BROKEN}"]) == 2  # several candidates: a load error, not a verdict
    assert "several encoder candidates" in capsys.readouterr().err
