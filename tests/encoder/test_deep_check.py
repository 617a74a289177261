import json
import subprocess
import sys

import pytest

from xbench.encoder.deep_check import DeepCheckOptions, deep_check

from conftest import BROKEN

OPTS = DeepCheckOptions(long_seconds=30.0)

# class -> (check, status, text in the reason)
EXPECTED = {
    "WrongDimEncoder": ("frames@1s", "fail", "output last dimension is 16 but output_dim = 32"),
    "ZeroFramesEncoder": ("at_least_one_frame", "fail", "no output frame"),
    "NaNEncoder": ("finite", "fail", "NaN or Inf in the output"),
    "BFloat16Encoder": ("dtype", "warn", "output is bfloat16"),
    "TwoDEncoder": ("frames@1s", "fail", "expected [B, T, D]"),
    "ShortInputRaisesEncoder": ("frames@0.5s", "fail", "raised RuntimeError: input shorter than 1 s"),
    "WrongHopEncoder": ("frames@10s", "fail", "the real hop is about 40 ms"),
    "BatchDependentEncoder": ("batch_invariance", "warn", "padding or batch statistics leak"),
    "MissingHopEncoder": ("attributes", "fail", "'hop_size_in_ms' is missing"),
    "StringRateEncoder": ("attributes", "fail", "'sampling_rate' must be a positive int"),
    "NoisyEncoder": ("determinism", "fail", "differ by up to"),
    "FramesModel": ("xares.class_name", "fail", "Class name must end with 'Encoder'"),
}
FAILS_OVERALL = {name for name, (_, status, _) in EXPECTED.items() if status == "fail"}


def _by_name(report):
    return {r.name: r for r in report.results}


def test_good_encoder_passes_everything(broken_module):
    report = deep_check(broken_module.GoodEncoder(), options=OPTS)
    assert report.ok and not report.warned, report.text()
    checks = _by_name(report)
    assert checks["frames@60s"].value == {"frames": 1500, "expected": 1500.0}
    long = checks["long_input"].value
    assert long["frames"] == 750 and long["seconds"] >= 0 and long["peak_rss_mib"] >= 0
    assert checks["throughput"].value > 0
    assert checks["batch_invariance"].value == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_broken_encoder_is_caught_by_name(broken_module, name):
    check, status, text = EXPECTED[name]
    report = deep_check(getattr(broken_module, name)(), options=OPTS)
    result = _by_name(report)[check]
    assert result.status == status, report.text()
    assert text in result.reason
    assert report.ok is (name not in FAILS_OVERALL)


def test_dropout_is_deterministic_because_the_harness_calls_eval(broken_module):
    report = deep_check(broken_module.DropoutEncoder(), options=OPTS)
    assert _by_name(report)["determinism"].status == "pass"


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "xbench", "check", *args, "--long-seconds", "20"],
        capture_output=True,
        text=True,
    )


def test_cli_json_and_exit_codes(tmp_path):
    good = _cli("--encoder", f"{BROKEN}:GoodEncoder", "--json")
    assert good.returncode == 0, good.stderr
    payload = json.loads(good.stdout)
    assert payload["ok"] and payload["counts"]["fail"] == 0
    bad = _cli("--encoder", f"{BROKEN}:WrongHopEncoder")
    assert bad.returncode == 1
    assert "FAIL  frames@10s" in bad.stdout and "real hop is about 40 ms" in bad.stdout
    missing = _cli("--encoder", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "nope.py: encoder file not found" in missing.stderr


@pytest.mark.parametrize("zoo_name", ["logmel", "random-projection"])
def test_builtin_baselines_pass(zoo_name):
    from xbench.encoder.contract import load_encoder

    report = deep_check(load_encoder(zoo_name), options=OPTS)
    assert report.ok, report.text()
