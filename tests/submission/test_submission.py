"""``xbench package`` / ``verify-submission`` on an encoder written here: local imports, weights, fresh venv.

Both run the encoder's code in the bubblewrap sandbox (see tests/submission/test_sandbox.py).
"""

import hashlib
import json
import time
import zipfile

import pytest
import torch
from sandbox_helpers import snapshot

from xbench.cli import main
from xbench.submission.imports import scan_imports
from xbench.submission.manifest import SubmissionError
from xbench.submission.package import PackageOptions, package
from xbench.submission.small_task import SCORE_FLOOR
from xbench.submission.verify import VerifyOptions, verify_submission

ENCODER = """\
from pathlib import Path

import torch

from featurize import band_energy
from mylib import Projection


class TinyEnergyEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.sampling_rate = 16000
        self.hop_size_in_ms = 20
        self.output_dim = OUTPUT_DIM
        self.proj = Projection(8, 8)
        self.proj.load_state_dict(torch.load(Path(__file__).parent / "weights.pt"))

    def forward(self, audio):
        import json  # a function-level stdlib import: not a requirement

        return self.proj(band_energy(audio, 320))
"""

FEATURIZE = """\
import numpy as np
import torch

EDGES = (0, 5, 10, 20, 28, 40, 60, 100, 161)  # rfft bins (50 Hz each) of a 320-sample frame


def band_energy(audio, hop):
    frames = audio[:, : audio.shape[1] // hop * hop].reshape(audio.shape[0], -1, hop)
    spec = torch.fft.rfft(frames, dim=-1).abs()
    bands = torch.stack([spec[..., a:b].mean(-1) for a, b in zip(EDGES, EDGES[1:])], -1)
    return torch.log1p(bands * float(np.e))
"""


@pytest.fixture
def encoder_dir(tmp_path):
    """An encoder folder with a helper module, a local package, weights, and clutter that must stay out."""
    root = tmp_path / "my encoder"
    (root / "mylib" / "__pycache__").mkdir(parents=True)
    (root / "my_encoder.py").write_text(ENCODER.replace("OUTPUT_DIM", "8"))
    (root / "featurize.py").write_text(FEATURIZE)
    (root / "mylib" / "__init__.py").write_text("from .layers import Projection\n")
    (root / "mylib" / "layers.py").write_text("import torch\n\n\nclass Projection(torch.nn.Linear):\n    pass\n")
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(8, 8).state_dict(), root / "weights.pt")
    # clutter: caches, VCS, data, an unused module, a package data file
    (root / "mylib" / "__pycache__" / "layers.cpython-311.pyc").write_bytes(b"\0" * 64)
    (root / "mylib" / "table.bin").write_bytes(b"\1" * 64)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "data").mkdir()
    (root / "data" / "clip.wav").write_bytes(b"RIFF" + b"\0" * 100)
    (root / "unused.py").write_text("import os\n")
    return root


CODE = {"my_encoder.py", "featurize.py", "mylib/__init__.py", "mylib/layers.py"}
GENERATED = {"requirements.txt", "metadata.json", "check_report.json", "README.md"}


def test_scan_finds_local_modules_and_third_party_imports(encoder_dir):
    scan = scan_imports(encoder_dir / "my_encoder.py")
    assert {p.relative_to(encoder_dir).as_posix() for p in scan.local_files} == CODE - {"my_encoder.py"}
    assert scan.third_party == {"torch", "numpy"}


def test_package_then_verify_in_a_fresh_venv(encoder_dir, tmp_path):
    out = tmp_path / "sub.zip"
    before = snapshot(encoder_dir)
    res = package(
        str(encoder_dir / "my_encoder.py"),
        out,
        PackageOptions(weights=[str(encoder_dir / "weights.pt")], authors=["A. Person"], long_seconds=3),
    )
    assert snapshot(encoder_dir) == before  # the checker imported the user's code and wrote no __pycache__ there
    names = set(zipfile.ZipFile(out).namelist())
    assert names == CODE | GENERATED | {"weights.pt"}
    meta = json.loads(zipfile.ZipFile(out).read("metadata.json"))
    assert meta["encoder"] == {"file": "my_encoder.py", "class": "TinyEnergyEncoder"}
    assert (meta["sampling_rate"], meta["hop_size_in_ms"], meta["output_dim"]) == (16000, 20.0, 8)
    assert meta["parameters"] == 8 * 8 + 8 and meta["authors"] == ["A. Person"]
    assert meta["checker"]["sandbox"] == "bubblewrap"
    assert meta["weights"][0]["sha256"] == hashlib.sha256((encoder_dir / "weights.pt").read_bytes()).hexdigest()
    reqs = zipfile.ZipFile(out).read("requirements.txt").decode().split()
    assert sorted(r.split("==")[0] for r in reqs) == ["numpy", "torch"]
    assert json.loads(zipfile.ZipFile(out).read("check_report.json"))["ok"] is True
    assert "weights.pt" in res.size_report() and "total" in res.size_report()

    start = time.monotonic()
    ver = verify_submission(out)  # the defaults organisers use: a 600 s long-input check, the small task
    elapsed = time.monotonic() - start
    steps = {s.name: s for s in ver.steps}
    assert ver.ok and ver.exit_code == 0, ver.text()
    assert list(steps) == [
        "metadata", "unpack", "checksums", "venv", "requirements", "checker", "isolation", "small task", "host memory"
    ]
    assert ver.sandbox["kind"] == "bubblewrap" and ver.sandbox["network"] == "none"
    assert "/venv/" in ver.checker["python"]  # ran by the venv's interpreter, not this one
    assert ver.checker["encoder"]["module_file"].endswith("submission/my_encoder.py")
    assert ver.checker["batch"]["clips"] == 16 and ver.checker["batch"]["seconds"] == 10.0  # what a run encodes
    for name in ("checker", "small task"):
        assert 0 < steps[name].peak_rss_bytes < 12 * 2**30 and 0 < steps[name].wall_s < elapsed
    assert set(ver.small_task["scores"]) == {"mlp", "knn"}
    assert min(ver.small_task["scores"].values()) >= SCORE_FLOOR
    for track, score in ver.small_task["scores"].items():  # the report names both tracks with their scores
        assert f"{track} {score:.3f}" in steps["small task"].detail
    assert elapsed < 30, f"a normal entry took {elapsed:.1f} s to verify"


def test_damaged_or_incomplete_zips_fail(encoder_dir, tmp_path):
    out = tmp_path / "sub.zip"
    package(str(encoder_dir / "my_encoder.py"), out, PackageOptions(weights=[str(encoder_dir / "weights.pt")]))
    with zipfile.ZipFile(out) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data + b"\n# edited" if name == "featurize.py" else data)
    res = verify_submission(tampered, VerifyOptions(long_seconds=2, small_task=False))
    assert res.exit_code == 1 and res.steps[-1].name == "checksums" and "featurize.py" in res.steps[-1].detail
    # a helper left out (and out of the metadata): the encoder cannot import in the unpacked folder
    meta = json.loads(files["metadata.json"])
    meta["files"] = [f for f in meta["files"] if f["path"] != "featurize.py"]
    incomplete = tmp_path / "incomplete.zip"
    with zipfile.ZipFile(incomplete, "w") as zf:
        for name, data in files.items():
            if name != "featurize.py":
                zf.writestr(name, json.dumps(meta).encode() if name == "metadata.json" else data)
    res = verify_submission(incomplete, VerifyOptions(long_seconds=2, small_task=False))
    assert not res.ok
    assert res.steps[-1].name == "checker" and "featurize" in res.steps[-1].detail


def test_download_stub_is_checksum_verified(encoder_dir, tmp_path):
    weights = encoder_dir / "weights.pt"
    mirror = tmp_path / "mirror" / "tiny.pt"
    mirror.parent.mkdir()
    mirror.write_bytes(weights.read_bytes())
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    out = tmp_path / "sub.zip"
    opts = PackageOptions(download_url=mirror.as_uri(), sha256=digest, weights_path="weights.pt", long_seconds=2)
    package(str(encoder_dir / "my_encoder.py"), out, opts)
    names = set(zipfile.ZipFile(out).namelist())
    assert names == CODE | GENERATED | {"fetch_weights.py"}  # weights not bundled
    res = verify_submission(out, VerifyOptions(long_seconds=2, small_task=False))
    assert res.ok, res.text()
    assert "checksum OK" in {s.name: s.detail for s in res.steps}["weights download"]
    # a wrong checksum is refused at packaging time, since the local weights do not match it
    with pytest.raises(SubmissionError, match="SHA-256"):
        package(
            str(encoder_dir / "my_encoder.py"),
            out,
            PackageOptions(download_url=mirror.as_uri(), sha256="0" * 64, weights_path="weights.pt"),
        )
    # and by the stub when the served file changes after packaging
    mirror.write_bytes(b"not the weights")
    res = verify_submission(out, VerifyOptions(long_seconds=2, small_task=False))
    assert not res.ok and "checksum mismatch" in res.steps[-1].detail
    # the fetch script is entry code too: one edited (its checksum updated to match) is never run
    with zipfile.ZipFile(out) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    files["fetch_weights.py"] += b"\nopen('/tmp/pwned', 'w')\n"
    meta = json.loads(files["metadata.json"])
    for entry in meta["files"]:
        if entry["path"] == "fetch_weights.py":
            entry["sha256"] = hashlib.sha256(files["fetch_weights.py"]).hexdigest()
    files["metadata.json"] = json.dumps(meta).encode()
    edited = tmp_path / "edited.zip"
    with zipfile.ZipFile(edited, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    res = verify_submission(edited, VerifyOptions(long_seconds=2, small_task=False))
    assert res.exit_code == 1
    assert res.reason == "weights download: fetch_weights.py is not the script xbench package writes"


def test_package_refuses_a_failing_encoder_and_shows_why(encoder_dir, tmp_path, capsys):
    (encoder_dir / "my_encoder.py").write_text(ENCODER.replace("OUTPUT_DIM", "9"))  # forward gives 8 dims
    out = tmp_path / "sub.zip"
    argv = ["package", "--encoder", str(encoder_dir / "my_encoder.py"), "--out", str(out), "--long-seconds", "2"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "fails the checker" in err and "FAIL" in err and "output_dim" in err
    assert not out.exists()
