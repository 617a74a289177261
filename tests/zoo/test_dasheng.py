"""Dasheng: equality with the ``dasheng`` 0.0.9 package, checkpoint layouts, chunking, top-dB scopes, MAE."""

import json

import numpy as np
import pytest
import torch

from xbench.encoders.dasheng import CARDS
from xbench.encoders.dasheng.encoder import DashengEncoder, load_checkpoint
from xbench.encoders.dasheng.model import (
    FRONT_END_KEYS,
    VARIANTS,
    DashengConfig,
    DashengModel,
    infer_config,
    parameter_count,
)
from xbench.encoders.dasheng.pretrain import DashengMAE, MAEConfig, random_masking, train_steps
from xbench.encoders.dasheng.pretrain.mae import save_encoder_checkpoint
from xbench.encoders.weights import WeightsUnavailableError

from conftest import FIXTURES, require_oracle

TOL = 1e-5
TINY = DashengConfig(embed_dim=16, depth=2, num_heads=2, target_length=32)


def _package():
    return require_oracle("dasheng.pretrained.pretrained").Dasheng


def _randomise_bn(model: torch.nn.Module, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    bn = model.init_bn[1] if isinstance(model.init_bn, torch.nn.Sequential) else model.init_bn["1"]
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(64, generator=gen) * 5 - 20)
        bn.running_var.copy_(torch.rand(64, generator=gen) * 50 + 10)
        bn.weight.copy_(1 + 0.1 * torch.randn(64, generator=gen))
        bn.bias.copy_(0.1 * torch.randn(64, generator=gen))


def _loud_and_quiet(samples: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, samples, generator=gen)
    x[1] *= 1e-3
    x[1, samples // 2 :] = 0.0  # a quiet clip, right-padded with zeros
    return x


# --- stored golden output (always runs) ----------------------------------------------------------------


def test_golden_fixture_matches_package_output_both_scopes():
    gold = np.load(FIXTURES / "dasheng_golden.npz")
    config = DashengConfig.from_dict(json.loads(str(gold["config"])))
    weights = {k[2:]: torch.from_numpy(gold[k]) for k in gold.files if k.startswith("w:")}
    x = torch.from_numpy(gold["input"])
    outs = {}
    for scope in ("batch", "clip"):
        model = DashengModel(config, top_db_scope=scope).eval()
        model.load_reference_state_dict(weights)  # no front-end buffers stored: taken from the module
        with torch.no_grad():
            outs[scope] = model(x).numpy()
    assert np.abs(outs["batch"] - gold["out_batch"]).max() <= TOL
    assert np.abs(outs["clip"] - gold["out_clip"]).max() <= TOL
    assert np.abs(outs["batch"][0] - outs["clip"][0]).max() <= TOL  # the loud clip sets the batch floor
    assert np.abs(gold["out_batch"][1] - gold["out_clip"][1]).max() > 1e-2  # the quiet clip's floor moved


# --- live package (test oracle) --------------------------------------------------------------------------


@pytest.mark.parametrize("samples", [700, 8000, 50000, 16000 * 21 + 123])
def test_equals_package_tiny_random_weights(samples):
    Dasheng = _package()
    torch.manual_seed(0)
    ref = Dasheng(embed_dim=16, depth=2, num_heads=2).eval()
    _randomise_bn(ref)
    mine = DashengModel(DashengConfig(embed_dim=16, depth=2, num_heads=2), top_db_scope="batch").eval()
    mine.load_reference_state_dict(ref.state_dict())
    x = _loud_and_quiet(samples)
    lengths = torch.tensor([samples, samples // 2])
    with torch.no_grad():
        assert (ref(x) - mine(x)).abs().max() <= TOL
        assert (ref(x, x_length=lengths) - mine(x, lengths)).abs().max() <= TOL


def test_equals_package_base_size_across_a_chunk_border():
    Dasheng = _package()
    torch.manual_seed(0)
    ref = Dasheng(embed_dim=768, depth=12, num_heads=12).eval()
    mine = DashengModel(VARIANTS["base"], top_db_scope="batch").eval()
    mine.load_reference_state_dict(ref.state_dict())
    x = torch.randn(1, 16000 * 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = mine(x)
        assert out.shape == (1, 300, 768)  # 12 s: 252 + 48 tokens
        assert (ref(x) - out).abs().max() <= TOL


def test_package_loads_our_zenodo_checkpoint_and_we_load_its(tmp_path):
    Dasheng = _package()
    torch.manual_seed(0)
    ref = Dasheng(embed_dim=16, depth=2, num_heads=2, target_length=32).eval()
    _randomise_bn(ref)
    path = tmp_path / "zenodo.pt"
    torch.save({"model": ref.state_dict(), "config": {"embed_dim": 16, "depth": 2, "num_heads": 2}}, path)
    state, config = load_checkpoint(path)
    config = DashengConfig.from_dict({**config.to_dict(), "target_length": 32})
    mine = DashengModel(config, top_db_scope="batch").eval()
    missing, unexpected = mine.load_state_dict(state, strict=False)
    assert (missing, unexpected) == ([], [])
    ours = tmp_path / "ours.pt"
    torch.save({"model": mine.state_dict(), "config": config.to_dict()}, ours)
    back = Dasheng.from_pretrained(str(ours)).eval()  # strict=True inside the package
    x = _loud_and_quiet(9000)
    with torch.no_grad():
        assert (back(x) - mine(x)).abs().max() <= TOL


# --- checkpoint layouts (no package needed) --------------------------------------------------------------


def _tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return DashengModel(TINY).state_dict()


def test_zenodo_layout_loads_strictly_through_the_wrapper(tmp_path):
    state = _tiny_state()
    assert set(FRONT_END_KEYS) <= set(state) and len(state) == 37
    path = tmp_path / "dasheng_tiny.pt"
    torch.save({"model": state, "config": TINY.to_dict()}, path)
    enc = DashengEncoder(checkpoint=path)
    assert enc.output_dim == 16 and enc.weights_source == str(path)
    for key, value in enc.model.state_dict().items():
        assert torch.equal(value, state[key]), key
    torch.save({"model": {**state, "head.weight": torch.zeros(1)}, "config": TINY.to_dict()}, path)
    with pytest.raises(RuntimeError, match="head.weight"):
        DashengEncoder(checkpoint=path)
    del state["norm.bias"]
    torch.save({"model": state, "config": TINY.to_dict()}, path)
    with pytest.raises(RuntimeError, match="norm.bias"):
        DashengEncoder(checkpoint=path)


def test_hf_safetensors_layout_loads_without_front_end_buffers(tmp_path):
    from safetensors.torch import save_file

    state = _tiny_state(3)
    hf = {f"encoder.{k}": v for k, v in state.items() if k not in FRONT_END_KEYS}
    save_file(hf, str(tmp_path / "model.safetensors"))
    kwargs = {k: TINY.to_dict()[k] for k in ("embed_dim", "depth", "num_heads", "target_length")}
    (tmp_path / "config.json").write_text(json.dumps({"name": "dasheng-base", "encoder_kwargs": kwargs}))
    enc = DashengEncoder(checkpoint=tmp_path)
    got = enc.model.state_dict()
    assert set(got) == set(state)
    assert all(torch.equal(got[k], state[k]) for k in state)


def test_config_inferred_from_released_shapes():
    with torch.device("meta"):
        for name, cfg in VARIANTS.items():
            model = DashengModel(cfg)
            assert infer_config(model.state_dict()) == cfg, name
            assert sum(p.numel() for p in model.parameters()) == parameter_count(cfg)


def test_cards_declare_the_released_shapes():
    by_name = {c.name: c for c in CARDS}
    for name, variant in (("dasheng-base", "base"), ("dasheng-0.6b", "0.6b"), ("dasheng-1.2b", "1.2b")):
        card = by_name[name]
        assert card.parameters == parameter_count(VARIANTS[variant])
        assert card.output_dim == VARIANTS[variant].embed_dim and card.hop_size_in_ms == 40
        assert card.weights_url.startswith("https://zenodo.org/records/11511780/files/")


def test_weights_are_fetched_lazily_and_offline_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("XBENCH_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"place dasheng_base\.pt .* at .*dasheng-base/dasheng_base\.pt"):
        DashengEncoder(pretrained=True)
    monkeypatch.setenv("XBENCH_RANDOM_WEIGHTS", "1")  # what the test suite sets: no fetch at all
    assert DashengEncoder().weights_source == "random (seed 0)"


# --- behaviour ---------------------------------------------------------------------------------------------


def test_frame_counts_and_short_inputs(tmp_path):
    torch.save({"model": _tiny_state(), "config": TINY.to_dict()}, tmp_path / "tiny.pt")
    enc = DashengEncoder(checkpoint=tmp_path / "tiny.pt")
    with torch.no_grad():
        for samples in (1, 300, 640, 8000, 16000, 50000, 16000 * 30):
            frames = enc(torch.zeros(2, samples)).shape[1]
            assert frames == max(1, (1 + max(samples, 640) // 160) // 4), samples
        assert enc(torch.zeros(16000)).shape == (1, 25, 16)


def test_chunks_are_encoded_independently():
    torch.manual_seed(0)
    model = DashengModel(TINY).eval()  # 8-token chunks = 32 frames
    spec = model.spectrogram(torch.randn(2, 16000, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        whole = model.forward_spectrogram(spec)
        parts = [model.forward_spectrogram(spec[..., s : s + 32]) for s in range(0, spec.shape[-1] - 3, 32)]
    assert whole.shape[1] == 25
    assert torch.allclose(whole, torch.cat(parts, dim=1), atol=TOL)


def test_per_clip_top_db_is_batch_invariant_and_batch_global_is_not():
    torch.manual_seed(0)
    clip = DashengModel(TINY, top_db_scope="clip").eval()
    batch = DashengModel(TINY, top_db_scope="batch").eval()
    batch.load_state_dict(clip.state_dict())
    x = _loud_and_quiet(16000)
    x[0] *= 100.0
    with torch.no_grad():
        alone = clip(x[1:])
        assert torch.allclose(clip(x)[1:], alone, atol=TOL)
        assert torch.allclose(batch(x[1:]), alone, atol=TOL)  # alone, both scopes agree
        assert (batch(x)[1:] - alone).abs().max() > 1e-2
    with pytest.raises(ValueError, match="top_db_scope"):
        DashengModel(TINY, top_db_scope="global")


# --- MAE pretraining ---------------------------------------------------------------------------------------


def test_group_masking_masks_neighbour_pairs():
    tokens = torch.arange(2 * 12 * 3, dtype=torch.float32).reshape(2, 12, 3)
    kept, mask, restore = random_masking(tokens, 0.75, group=2, generator=torch.Generator().manual_seed(0))
    assert kept.shape == (2, 3, 3) and mask.sum(1).tolist() == [9.0, 9.0]
    assert torch.equal(mask[:, 0::2], mask[:, 1::2]) or kept.shape[1] % 2  # pairs share their fate
    shuffled = torch.cat([kept, torch.zeros(2, 9, 3)], dim=1)
    back = torch.gather(shuffled, 1, restore.unsqueeze(-1).expand(-1, -1, 3))
    assert torch.equal(back[mask == 0], tokens[mask == 0])


def test_mae_train_steps_lower_the_loss_and_weights_load_into_the_zoo_wrapper(tmp_path):
    torch.manual_seed(0)
    cfg = DashengConfig(embed_dim=32, depth=2, num_heads=2, target_length=128)
    mae = DashengMAE(cfg, MAEConfig(decoder_dim=32, decoder_depth=1, decoder_heads=2))
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(12000) / 16000
    tones = torch.stack([0.5 * torch.sin(2 * torch.pi * (200 + 300 * i) * t) for i in range(4)])
    batches = [tones + 0.01 * torch.randn(4, 12000, generator=gen)]
    losses = train_steps(mae, batches, steps=30, lr=2e-3)
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    path = save_encoder_checkpoint(mae, tmp_path / "mae_encoder.pt")
    enc = DashengEncoder(checkpoint=path)
    x = torch.randn(2, 30000, generator=gen)
    with torch.no_grad():
        assert enc.output_dim == 32
        assert torch.equal(enc(x), mae.encoder.eval()(x))
    with pytest.raises(ValueError, match="at most"):
        mae(torch.zeros(1, 16000 * 3))


def test_the_padding_mask_follows_the_tokens_device_when_lengths_stay_on_the_cpu():
    """``lengths`` on the CPU and the model elsewhere (``meta`` stands in for a GPU: mixing it with a CPU
    tensor fails as CUDA does) give the same mask shape: the lengths move to the tokens' device."""
    model = DashengModel(TINY).eval().to("meta")
    spec = torch.empty(2, 1, TINY.n_mels, 64, device="meta")
    out = model.forward_spectrogram(spec, lengths=torch.tensor([16000, 8000]))
    assert out.device.type == "meta" and out.shape[0] == 2 and out.shape[-1] == TINY.embed_dim
