"""A rerun whose units and results all exist does not build the encoder: its identity comes from the identity
cache while the files its building read are unchanged (the encoder file, its weights read with ``torch.load``
or ``safetensors``); a changed weight file or source builds it again (a new key), a touched but equal file
does not; an encoder that builds into another identity than the cached one is an error, not silent reuse.
The device, GPU, precision and TF32 setting enter the keys off the CPU.
"""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest
import torch

from xbench.encoder.contract import HarnessOptions
from xbench.pipeline.handle import StaleIdentityError
from xbench.pipeline.run import RunOptions, evaluate

from conftest import clip_task, tone_items

ENCODER = '''
import os
from pathlib import Path

import torch

from xbench.encoders.baselines import LogMelEncoder

HERE = Path(__file__).parent


class WeightedEncoder(LogMelEncoder):
    """Log-mel frames times a scale read from a weight file (torch.load or safetensors)."""

    def __init__(self):
        super().__init__()
        with open(os.environ["XBENCH_TEST_BUILDS"], "a") as log:
            log.write("built\\n")
        if (HERE / "scale.bin").exists():  # read natively (no Python open) beside a config read through Python
            import json

            import numpy as np

            assert json.loads((HERE / "config.json").read_text())["kind"] == "scale"
            scale = torch.from_numpy(np.fromfile(str(HERE / "scale.bin"), dtype=np.float32))[0]
        elif (HERE / "scale.safetensors").exists():
            from safetensors.torch import load_file

            scale = load_file(str(HERE / "scale.safetensors"))["scale"]
        else:
            scale = torch.load(HERE / "scale.pt")
        self.register_buffer("scale", scale * float(os.environ.get("XBENCH_TEST_HIDDEN", "1")))

    def forward(self, audio):
        return super().forward(audio) * self.scale
'''


@pytest.fixture
def setup(tmp_path, monkeypatch):
    splits = {f"i_{s}": tone_items(n, ["a", "b"] * 3, {"a": 300.0, "b": 2000.0}, s[:2]) for n, s in enumerate("tvs")}
    task = clip_task(tmp_path / "data", "ident", splits, ("a", "b"), 3, eval_weight=6, epochs=1)
    folder = tmp_path / "enc"
    folder.mkdir()
    (folder / "weighted.py").write_text(textwrap.dedent(ENCODER))
    torch.save(torch.tensor(2.0), folder / "scale.pt")
    builds = tmp_path / "builds.log"
    monkeypatch.setenv("XBENCH_TEST_BUILDS", str(builds))
    return task, folder, builds, tmp_path


def _run(setup, out="out", **kw):
    task, folder, _, root = setup
    opts = RunOptions(
        cache_root=str(root / "cache"), output_dir=str(root / out), bootstrap_rounds=10, show_progress=False,
        tracks=("knn",), workers=0, **kw,
    )  # fmt: skip
    return evaluate(str(folder / "weighted.py"), [task], opts)


def _builds(setup) -> int:
    builds = setup[2]
    return len(builds.read_text().splitlines()) if builds.exists() else 0


def test_a_fully_cached_rerun_does_not_build_the_encoder(setup):
    first = _run(setup)
    assert _builds(setup) == 1
    again = _run(setup)  # results exist
    assert _builds(setup) == 1 and again.equals(first)
    other_output = _run(setup, out="out2")  # units exist, results not: scored from the cache, still unbuilt
    assert _builds(setup) == 1 and other_output[["raw", "score"]].equals(first[["raw", "score"]])

    folder = setup[1]
    os.utime(folder / "scale.pt", (1, 1))  # touched, same bytes: the sha256 says unchanged
    _run(setup)
    assert _builds(setup) == 1


@pytest.mark.parametrize(
    "change", ["weights (torch.load)", "weights (safetensors)", "weights (native, beside a config)", "encoder source"]
)
def test_a_changed_weight_or_source_file_builds_again_under_a_new_key(setup, change):
    folder, root = setup[1], setup[3]
    if change == "weights (safetensors)":
        from safetensors.torch import save_file

        save_file({"scale": torch.tensor(2.0)}, str(folder / "scale.safetensors"))
    elif change == "weights (native, beside a config)":
        (folder / "config.json").write_text('{"kind": "scale"}')
        np.array([2.0], dtype=np.float32).tofile(folder / "scale.bin")
    _run(setup)
    assert _builds(setup) == 1
    if change == "weights (torch.load)":
        torch.save(torch.tensor(3.0), folder / "scale.pt")
    elif change == "weights (safetensors)":
        save_file({"scale": torch.tensor(3.0)}, str(folder / "scale.safetensors"))
    elif change == "weights (native, beside a config)":
        np.array([3.0], dtype=np.float32).tofile(folder / "scale.bin")
    else:
        (folder / "weighted.py").write_text((folder / "weighted.py").read_text() + "\n# edited\n")
    _run(setup)
    assert _builds(setup) == 2  # the lookup missed: built (once) to take the new identity, and embedded
    assert len(list((root / "cache" / "embeddings").iterdir())) == 2  # a new key, the old cache untouched


def test_an_encoder_that_builds_into_another_identity_is_an_error(setup, monkeypatch):
    root = setup[3]
    _run(setup)
    monkeypatch.setenv("XBENCH_TEST_HIDDEN", "5")  # changes the weights through no file the cache can stamp
    (marker,) = list((root / "cache").rglob("i_s-000000.tar.npz.done.json"))
    marker.unlink()  # a unit to embed: the encoder is built, and its identity checked
    with pytest.raises(StaleIdentityError, match="another identity"):
        _run(setup, out="out2")
    monkeypatch.delenv("XBENCH_TEST_HIDDEN")
    assert _builds(setup) == 2
    _run(setup, out="out3")  # the entry was dropped: the next run builds once, caches afresh and embeds the unit
    assert _builds(setup) == 3 and marker.exists()


def test_gpu_precision_and_tf32_enter_the_key_off_the_cpu(monkeypatch):
    cpu = HarnessOptions().describe()
    assert "compute" not in cpu and "precision" not in cpu  # CPU fp32 keys are what they were
    assert HarnessOptions(precision="bf16").describe()["precision"] == "bf16"
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    gpu = HarnessOptions(device="cuda:1").describe()["compute"]
    assert gpu == {"type": "cuda", "gpu": "NVIDIA H100 80GB HBM3", "cuda": "12.4", "cudnn": 90100, "tf32": False}
    assert HarnessOptions(device="cuda", tf32=True).describe()["compute"]["tf32"] is True
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        HarnessOptions(precision="int8")
