"""BEATs / OpenBEATs: equality with the ``openbeats`` 0.1.1 encoder, checkpoint layouts, frames, pretraining."""

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from xbench.encoders.beats import BASE_PARAMETERS, CARDS, LARGE_PARAMETERS
from xbench.encoders.beats.encoder import BEATsEncoder, OpenBEATsBaseI3Encoder
from xbench.encoders.beats.model import (
    VARIANTS,
    BeatsConfig,
    BeatsModel,
    infer_config,
    parameter_count,
    pool_frequency_tokens,
)
from xbench.encoders.beats.pretrain import (
    BeatsMaskedPretraining,
    RandomProjectionTokenizer,
    mask_patches,
    save_encoder_checkpoint,
    train_steps,
)
from xbench.encoders.weights import WeightsUnavailableError

from conftest import FIXTURES, require_oracle

TOL = 1e-5
TINY = replace(
    VARIANTS["base"],
    encoder_layers=2,
    encoder_embed_dim=32,
    encoder_ffn_embed_dim=64,
    encoder_attention_heads=4,
    embed_dim=16,
    conv_pos=16,
    conv_pos_groups=4,
)


def _oracle():
    return require_oracle("openbeats.beats_encoder").BeatsEncoder


def _oracle_model(cfg: dict, seed: int = 0):
    BeatsEncoder = _oracle()
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BeatsEncoder(input_size=0, beats_config=cfg).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "layer_norm" in name or name.endswith("grep_a"):
                param.add_(0.1 * torch.randn_like(param))
    return model


def _oracle_tokens(model, x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return model(x, torch.tensor([x.shape[1]] * len(x)))[0]


def _tiny_model(seed: int = 0) -> BeatsModel:
    torch.manual_seed(seed)
    return BeatsModel(TINY).eval()


def _tiny_encoder(tmp_path, **kwargs) -> BEATsEncoder:
    torch.save({"cfg": TINY.to_dict(), "model": _tiny_model().state_dict()}, tmp_path / "tiny.pt")
    return BEATsEncoder(checkpoint=tmp_path / "tiny.pt", **kwargs)


# --- stored golden output (always runs) ----------------------------------------------------------------


def test_golden_fixture_matches_openbeats_output():
    gold = np.load(FIXTURES / "beats_golden.npz")
    config = BeatsConfig.from_dict(json.loads(str(gold["config"])))
    model = BeatsModel(config).eval()
    dropped = model.load_reference_state_dict({k[2:]: torch.from_numpy(gold[k]) for k in gold.files if k[:2] == "w:"})
    assert dropped == []
    with torch.no_grad():
        out = model(torch.from_numpy(gold["input"])).numpy()
    assert out.shape == gold["out_tokens"].shape == (2, 24, 32)
    assert np.abs(out - gold["out_tokens"]).max() <= TOL


# --- live oracle -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("samples", [1000, 3000, 8000, 50000, 16000 * 25])
def test_equals_openbeats_tiny_random_weights(samples):
    ref = _oracle_model(json.loads(str(np.load(FIXTURES / "beats_golden.npz")["config"])))
    mine = BeatsModel(BeatsConfig.from_dict(json.loads(str(np.load(FIXTURES / "beats_golden.npz")["config"]))))
    assert sorted(mine.eval().load_reference_state_dict(ref.state_dict())) == [
        "patch_embedding_pad.weight",
        "raw2fbank_pad.weight",
    ]
    x = torch.randn(2, samples, generator=torch.Generator().manual_seed(samples))
    with torch.no_grad():
        assert (mine(x) - _oracle_tokens(ref, x)).abs().max() <= TOL


def test_equals_openbeats_base_size():
    cfg = {k: v for k, v in VARIANTS["base"].to_dict().items() if k not in ("fbank_mean", "fbank_std")}
    ref = _oracle_model(cfg)
    mine = BeatsModel(VARIANTS["base"]).eval()
    mine.load_reference_state_dict(ref.state_dict())
    assert sum(p.numel() for p in mine.parameters()) == BASE_PARAMETERS
    x = torch.randn(1, 16000 * 4, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = mine(x)
        assert out.shape == (1, 24 * 8, 768)
        assert (out - _oracle_tokens(ref, x)).abs().max() <= TOL


@pytest.mark.slow
def test_equals_openbeats_large_size():
    cfg = {k: v for k, v in VARIANTS["large"].to_dict().items() if k not in ("fbank_mean", "fbank_std")}
    ref = _oracle_model(cfg)
    mine = BeatsModel(VARIANTS["large"]).eval()
    mine.load_reference_state_dict(ref.state_dict())
    assert sum(p.numel() for p in mine.parameters()) == LARGE_PARAMETERS
    x = torch.randn(1, 16000 * 3, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = _oracle_tokens(ref, x)
        # 24 layers of float32 rounding on outputs up to ~13 (noisy LayerNorm gains): relative 1e-6
        assert (mine(x) - expected).abs().max() <= TOL * max(1.0, float(expected.abs().max()))


def test_openbeats_hf_checkpoint_loads_through_the_wrapper(tmp_path):
    cfg = json.loads(str(np.load(FIXTURES / "beats_golden.npz")["config"]))
    ref = _oracle_model(cfg)
    torch.save({"cfg": cfg, "model": ref.state_dict()}, tmp_path / "OpenBEATs-tiny.pt")
    enc = OpenBEATsBaseI3Encoder(checkpoint=tmp_path / "OpenBEATs-tiny.pt")
    assert sorted(enc.dropped_keys) == ["patch_embedding_pad.weight", "raw2fbank_pad.weight"]
    x = torch.randn(2, 16000, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        tokens = _oracle_tokens(ref, x)
        assert (enc(x) - tokens.reshape(2, -1, 8, 32).mean(2)).abs().max() <= TOL


# --- checkpoint layouts (no oracle needed) ---------------------------------------------------------------


def test_microsoft_layout_with_and_without_fine_tuned_head(tmp_path):
    state = _tiny_model(1).state_dict()
    assert "encoder.layers.1.self_attn.relative_attention_bias.weight" in state  # shared table, every layer
    path = tmp_path / "BEATs_tiny.pt"
    ms_cfg = {**TINY.to_dict(), "finetuned_model": True, "predictor_class": 3, "input_patch_size": 16}
    head = {"predictor.weight": torch.zeros(3, 32), "predictor.bias": torch.zeros(3)}
    torch.save({"cfg": ms_cfg, "model": {**state, **head}, "label_dict": {0: "a"}}, path)
    enc = BEATsEncoder(checkpoint=path)
    assert sorted(enc.dropped_keys) == ["predictor.bias", "predictor.weight"]
    got = enc.model.state_dict()
    assert set(got) == set(state) and all(torch.equal(got[k], state[k]) for k in state)
    torch.save({"cfg": ms_cfg, "model": {**state, "encoder.extra.weight": torch.zeros(1)}}, path)
    with pytest.raises(RuntimeError, match="encoder.extra.weight"):
        BEATsEncoder(checkpoint=path)
    missing = {k: v for k, v in state.items() if k != "encoder.layer_norm.bias"}
    torch.save({"cfg": ms_cfg, "model": missing}, path)
    with pytest.raises(RuntimeError, match="encoder.layer_norm.bias"):
        BEATsEncoder(checkpoint=path)


def test_bias_table_stored_once_is_shared(tmp_path):
    state = _tiny_model(2).state_dict()
    del state["encoder.layers.1.self_attn.relative_attention_bias.weight"]
    torch.save({"cfg": TINY.to_dict(), "model": state}, tmp_path / "one_table.pt")
    enc = BEATsEncoder(checkpoint=tmp_path / "one_table.pt")
    layers = enc.model.encoder.layers
    assert layers[1].self_attn.relative_attention_bias is layers[0].self_attn.relative_attention_bias


def test_espnet_fine_tune_layout_with_and_without_config_yaml(tmp_path):
    import yaml

    model = _tiny_model(3)
    state = {f"encoder.{k}": v for k, v in model.state_dict().items()}
    state["encoder.patch_embedding_pad.weight"] = torch.ones(1, 1, 16, 16)
    state["encoder.raw2fbank_pad.weight"] = torch.ones(1, 1, 400)
    state["decoder.linear_out.weight"] = torch.zeros(5, 32)
    state["decoder.linear_out.bias"] = torch.zeros(5)
    folder = tmp_path / "espnet"
    folder.mkdir()
    torch.save(state, folder / "valid.acc.best.pth")
    x = torch.randn(1, 8000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = pool_frequency_tokens(model(x))
        inferred = BEATsEncoder(checkpoint=folder)  # no config.yaml: architecture from the shapes
        assert inferred.model.config == TINY
        assert (inferred(x) - expected).abs().max() <= TOL
        conf = {"encoder_conf": {"beats_config": {k: v for k, v in TINY.to_dict().items() if "fbank" not in k}}}
        (folder / "config.yaml").write_text(yaml.safe_dump(conf))
        enc = BEATsEncoder(checkpoint=folder / "valid.acc.best.pth")
        assert "decoder.linear_out.weight" in enc.dropped_keys
        assert (enc(x) - expected).abs().max() <= TOL


def test_released_shapes_inferred_and_counted():
    with torch.device("meta"):
        for name, cfg in VARIANTS.items():
            assert infer_config(BeatsModel(cfg).state_dict()) == cfg, name
    assert parameter_count(VARIANTS["base"]) == BASE_PARAMETERS
    assert parameter_count(VARIANTS["large"]) == LARGE_PARAMETERS
    for card in CARDS:
        assert card.hop_size_in_ms == 160
        assert card.parameters == (LARGE_PARAMETERS if "large" in card.name else BASE_PARAMETERS)
    names = {c.name for c in CARDS}
    assert {"beats-iter3", "openbeats-base-i3", "openbeats-large-i3"} <= names


def test_offline_errors_name_the_file_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("XBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("XBENCH_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"place BEATs_iter3\.pt .*beats-iter3/BEATs_iter3\.pt"):
        BEATsEncoder(pretrained=True)
    with pytest.raises(WeightsUnavailableError, match=r"OpenBEATs-Base-i3\.pt.*huggingface\.co/shikhar7ssu"):
        OpenBEATsBaseI3Encoder(pretrained=True)


# --- frames ------------------------------------------------------------------------------------------------


def test_frames_pooling_and_batch_consistency(tmp_path):
    enc = _tiny_encoder(tmp_path)
    cat = _tiny_encoder(tmp_path, token_pooling="concat")
    assert (enc.output_dim, cat.output_dim) == (32, 256)
    with torch.no_grad():
        for samples, steps in ((1000, 1), (8000, 3), (16000, 6), (160000, 62), (16000 * 60, 374)):
            assert enc(torch.zeros(1, samples)).shape == (1, steps, 32), samples
        x = torch.randn(2, 24000, generator=torch.Generator().manual_seed(9))
        mean, concat = enc(x), cat(x)
        assert concat.shape == (2, 9, 256)
        assert torch.allclose(concat.reshape(2, 9, 8, 32).mean(2), mean, atol=1e-6)
        alone = torch.cat([enc(x[i : i + 1]) for i in range(2)])
        assert (alone - mean).abs().max() <= TOL
        assert enc(x[0]).shape == (1, 9, 32)  # 1-D input
    with pytest.raises(ValueError, match="token_pooling"):
        BEATsEncoder(pretrained=False, token_pooling="max")


# --- pretraining ---------------------------------------------------------------------------------------------


def test_tokenizer_is_seeded_and_labels_every_patch():
    fbank = torch.randn(2, 98, 128, generator=torch.Generator().manual_seed(0))
    a, b = RandomProjectionTokenizer(seed=1), RandomProjectionTokenizer(seed=1)
    codes = a(fbank)
    assert codes.shape == (2, 6 * 8) and codes.dtype == torch.long
    assert torch.equal(codes, b(fbank)) and int(codes.max()) < 1024
    assert not torch.equal(codes, RandomProjectionTokenizer(seed=2)(fbank))


def test_mask_patches_keeps_order_and_restores():
    x = torch.arange(2 * 16 * 2, dtype=torch.float32).reshape(2, 16, 2)
    kept, restore, masked = mask_patches(x, 0.75, torch.Generator().manual_seed(0))
    assert kept.shape == (2, 4, 2) and masked.sum(1).tolist() == [12, 12]
    assert (kept[..., 0].diff(dim=1) > 0).all()  # visible patches stay in time order
    full = torch.gather(torch.cat([kept, torch.zeros(2, 12, 2)], 1), 1, restore.unsqueeze(-1).expand(-1, -1, 2))
    assert torch.equal(full[~masked], x[~masked])


def test_masked_prediction_lowers_the_loss_and_weights_load_into_the_zoo_wrapper(tmp_path):
    torch.manual_seed(0)
    cfg = replace(TINY, encoder_embed_dim=64, encoder_ffn_embed_dim=128, dropout=0.0)
    model = BeatsMaskedPretraining(cfg, RandomProjectionTokenizer(codebook_size=64, codebook_dim=32))
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    tones = torch.stack([0.3 * torch.sin(2 * torch.pi * (200 + 500 * i) * t * (1 + 0.5 * t)) for i in range(4)])
    losses = train_steps(model, [tones + 0.01 * torch.randn(4, 16000, generator=gen)], steps=30, lr=2e-3)
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    path = save_encoder_checkpoint(model, tmp_path / "beats_tiny.pt")
    enc = BEATsEncoder(checkpoint=path)
    x = torch.randn(2, 20000, generator=gen)
    with torch.no_grad():
        assert enc.output_dim == 64
        assert torch.equal(enc.model(x), model.encoder.eval()(x))
