import json
import subprocess
import sys

import pytest
import torch

from xbench.encoder.deep_check import DeepCheckOptions, PeakMemory, deep_check, probe_signal

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
    "BatchDependentEncoder": ("batch_statistics", "fail", "statistics over the batch"),
    "BatchMeanEncoder": ("batch_statistics", "fail", "leak between clips"),
    "BatchNormStatsEncoder": ("batch_statistics", "fail", "leak between clips"),
    "PaddingSensitiveEncoder": ("batch_invariance", "warn", "padding leaks into its frames"),
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
    assert _by_name(report)["batch_statistics"].status == "pass"


@pytest.mark.parametrize("name", ["GoodEncoder", "PaddingSensitiveEncoder"])
def test_batch_statistics_passes_without_a_batch_leak(broken_module, name):
    checks = _by_name(deep_check(getattr(broken_module, name)(), options=OPTS))
    assert checks["batch_statistics"].status == "pass", checks["batch_statistics"].line()
    assert checks["batch_statistics"].value == pytest.approx(0.0, abs=1e-6)


def test_batch_statistics_measures_the_leak_of_a_batch_mean(broken_module):
    # alone, a clip minus its own batch mean is all zeros; batched with b it is (a - b) / 2, so the change is
    # the whole of the larger output: relative difference 1
    result = _by_name(deep_check(broken_module.BatchMeanEncoder(), options=OPTS))["batch_statistics"]
    assert result.status == "fail" and result.value == pytest.approx(1.0)


def test_probe_signal_is_float32_reproducible_and_allocates_4_bytes_per_sample():
    n = 600 * 16000
    with PeakMemory() as mem:
        wave = probe_signal(n, 16000, seed=5)
    assert wave.dtype == torch.float32 and wave.shape == (1, n)
    # the float32 result plus chunk-sized temporaries; a float64 intermediate of the input's size would be 8n
    assert mem.peak_rss <= 4 * n + 8 * 2**20, mem.peak_rss
    assert torch.equal(probe_signal(50_000, 16000, seed=5), wave[:, :50_000])
    assert not torch.equal(probe_signal(50_000, 16000, seed=6), wave[:, :50_000])
    assert float(wave.abs().max()) < 1.0 and float(wave.std()) > 0.1


LONG_CHECK = """
import json, resource, sys
from contextlib import redirect_stdout
from io import StringIO
from xbench.cli import main
out = StringIO()
with redirect_stdout(out):
    rc = main(["check", "--encoder", "logmel", "--long-seconds", "3600", "--json"])
report = json.loads(out.getvalue())
long = next(r for r in report["results"] if r["name"] == "long_input")
print(json.dumps({"rc": rc, "long": long, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def test_a_one_hour_check_on_logmel_stays_under_its_measured_memory_bound():
    # measured: the whole process peaked at 2670 MiB with a float64 test signal, 686 MiB after (torch's own
    # ~220 MiB, the 220 MiB float32 input, ~220 MiB of log-mel frames and chunking)
    done = subprocess.run([sys.executable, "-c", LONG_CHECK], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0 and got["long"]["status"] == "pass"
    value = got["long"]["value"]
    assert value["input_mib"] == pytest.approx(3600 * 16000 * 4 / 2**20, abs=0.1)
    assert value["frames"] == 360_360
    assert 0 < value["peak_rss_mib"] < 400
    assert got["maxrss_mib"] < 1000, got
