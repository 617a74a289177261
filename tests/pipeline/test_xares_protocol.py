"""``--protocol xares`` calls the encoder as X-ARES does: whole clips, and the encoder's own X-ARES behaviour.

X-ARES 0.1.3 hands every (padded) batch to the encoder as it is (``XaresTask.make_encoded_tar`` in
``xares/task.py``): no chunking. An encoder may define ``use_protocol(protocol) -> dict`` to behave as
X-ARES's own wrapper of its model; the zoo's Dasheng then behaves as ``example/dasheng/dasheng_encoder.py``
over the ``dasheng`` package.
"""

import json

import numpy as np
import pytest
import torch

from xbench.data.writer import write_audio_shards
from xbench.encoder.contract import EncoderAttributeError, HarnessOptions, apply_protocol
from xbench.encoders.dasheng.encoder import DashengEncoder
from xbench.encoders.dasheng.model import DashengConfig, DashengModel
from xbench.pipeline.run import RunOptions, evaluate
from xbench.taskspec.config import LabelSpec, TaskConfig

from conftest import require_oracle

SR = 16000
TOL = 1e-5


class LengthRecorder(torch.nn.Module):
    """Records the input length of every call and the protocols it was told; one 4-d frame per 40 ms."""

    sampling_rate = SR
    output_dim = 4
    hop_size_in_ms = 40

    def __init__(self) -> None:
        super().__init__()
        self.lengths: list[int] = []
        self.protocols: list[str] = []

    def use_protocol(self, protocol: str) -> dict:
        self.protocols.append(protocol)
        return {"recorder": protocol} if protocol == "xares" else {}

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        self.lengths.append(audio.shape[-1])
        frames = audio.unfold(-1, 640, 640)  # [B, T, 640]
        return torch.stack([frames.mean(-1), frames.std(-1), frames.abs().amax(-1), frames.pow(2).mean(-1)], -1)


def _clip(seconds: float, freq: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _task(tmp_path) -> TaskConfig:
    data = tmp_path / "data"
    labels = ["low", "high"]
    train = [(f"tr{i:02d}", (_clip(0.5, 300 if i % 2 else 1500, i), SR), {"label": labels[i % 2]}) for i in range(12)]
    write_audio_shards(data, "train-%06d.tar", train, maxcount=100)
    write_audio_shards(data, "valid-%06d.tar", train[:2], maxcount=100)
    test = [
        ("long", (_clip(25.0, 300, 99), SR), {"label": "low"}),
        ("short", (_clip(0.5, 1500, 98), SR), {"label": "high"}),
    ]
    write_audio_shards(data, "test-%06d.tar", test, maxcount=100)
    return TaskConfig(
        name="lengths",
        domain="sound",
        labels=LabelSpec("class", "label", classes=tuple(labels)),
        output_dim=2,
        data_dir=str(data),
        eval_weight=2,
        batch_size_encode=1,
    )


def test_xares_protocol_passes_whole_clips_and_tells_the_encoder(tmp_path):
    task = _task(tmp_path)
    enc = LengthRecorder()
    seen = {}
    for protocol in ("xares", "xbench"):
        enc.lengths.clear()
        opts = RunOptions(
            protocol=protocol,
            tracks=("knn",),
            cache_root=str(tmp_path / "cache"),
            output_dir=str(tmp_path / "out"),
            show_progress=False,
            bootstrap_rounds=10,
        )
        assert opts.harness.chunk_seconds == (None if protocol == "xares" else 10.0)
        evaluate(enc, [task], opts)
        seen[protocol] = sorted(set(enc.lengths))
        (result,) = (tmp_path / "out").glob(f"*/{protocol}/lengths@v1.json")
        options = json.loads(result.read_text())["encoder"]["options"]
        assert options.get("protocol_behaviour") == ({"recorder": "xares"} if protocol == "xares" else None)
    assert enc.protocols == ["xares", "xbench"]  # told before each run; the default run returns it to as built
    assert seen["xares"] == [SR // 2, 25 * SR]  # the 25 s clip arrives whole
    assert seen["xbench"] == [SR // 2, 5 * SR, 10 * SR]  # the harness's 10 s chunks: 10 + 10 + 5 s


def test_harness_options_for_protocol():
    opts = HarnessOptions(chunk_seconds=4.0)
    assert opts.for_protocol("xares").chunk_seconds is None
    assert opts.for_protocol("xbench") == opts
    assert RunOptions(protocol="xares", harness=opts).harness.chunk_seconds is None


def test_apply_protocol_without_hook_and_with_a_bad_one():
    assert apply_protocol(torch.nn.Linear(2, 2), "xares") == {}

    class Bad(LengthRecorder):
        def use_protocol(self, protocol):
            return "batch"

    with pytest.raises(EncoderAttributeError, match=r"use_protocol\('xares'\) returned str, expected a dict"):
        apply_protocol(Bad(), "xares")


# --- the zoo's Dasheng ---------------------------------------------------------------------------------------

SMALL = DashengConfig(embed_dim=16, depth=2, num_heads=2)


def _small_dasheng(scope: str = "clip") -> DashengEncoder:
    enc = DashengEncoder(pretrained=False, top_db_scope=scope)
    enc.model = DashengModel(SMALL, top_db_scope=scope).eval()
    return enc


def _loud_and_quiet(samples: int) -> torch.Tensor:
    x = torch.randn(2, samples, generator=torch.Generator().manual_seed(0))
    x[1] *= 1e-3
    x[1, samples // 2 :] = 0.0  # a quiet clip, right-padded with zeros: the floor decides its padded frames
    return x


def test_dasheng_under_xares_uses_the_batch_global_top_db_floor_and_back():
    enc = _small_dasheng()
    x = _loud_and_quiet(32000)
    with torch.no_grad():
        per_clip = enc(x)
        assert apply_protocol(enc, "xares")["top_db_scope"] == "batch"
        batch_global = enc(x)
        alone = [enc(x[i : i + 1]) for i in range(2)]
        assert apply_protocol(enc, "xbench") == {}
        again = enc(x)
    assert (batch_global[0] - per_clip[0]).abs().max() <= TOL  # the loud clip sets the batch floor
    assert (batch_global[1] - per_clip[1]).abs().max() > 1e-2  # the quiet clip's floor moved up
    assert (alone[1][0] - per_clip[1]).abs().max() <= TOL  # alone, the batch floor is its own
    assert torch.equal(again, per_clip)  # the default protocol returns to the scope it was built with
    built_batch = _small_dasheng("batch")
    assert apply_protocol(built_batch, "xbench") == {} and built_batch.model.top_db_scope == "batch"


@pytest.mark.parametrize("seconds", [8.0, 20.5, 23.0])
def test_dasheng_under_xares_equals_xares_example_over_the_dasheng_package(seconds):
    Dasheng = require_oracle("dasheng.pretrained.pretrained").Dasheng
    enc = _small_dasheng()
    ref = Dasheng(embed_dim=16, depth=2, num_heads=2).eval()
    ref.load_state_dict(enc.model.state_dict())
    x = _loud_and_quiet(int(seconds * SR))
    # example/dasheng/dasheng_encoder.py: chunks of 10 s when longer, a last chunk under 1 s padded to 1 s
    pieces = x.split(10 * SR, dim=-1) if x.shape[-1] > 10 * SR else (x,)
    pieces = [torch.nn.functional.pad(p, (0, max(0, SR - p.shape[-1]))) for p in pieces]
    apply_protocol(enc, "xares")
    with torch.no_grad():
        expected = torch.cat([ref(p) for p in pieces], dim=1)
        ours = enc(x)
    assert ours.shape == expected.shape
    assert (ours - expected).abs().max() <= TOL
