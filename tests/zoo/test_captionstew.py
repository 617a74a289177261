"""CaptionStew / Auden Zipformer: equality with Auden, parameters, checkpoint layouts, wrapper, CLAP pretraining."""

import json
import math

import numpy as np
import pytest
import torch

from xbench.encoders.captionstew import CARDS, ZIPFORMER_M_PARAMETERS
from xbench.encoders.captionstew.encoder import (
    CHECKPOINT_ENV,
    MIN_SAMPLES,
    CaptionStewEncoder,
    fbank,
    load_auden_checkpoint,
    save_auden_checkpoint,
)
from xbench.encoders.captionstew.pretrain import (
    ClapConfig,
    ClapModel,
    build_tokenizer,
    load_clap_checkpoint,
    save_clap_checkpoint,
    text_config,
    train_steps,
)
from xbench.encoders.captionstew.zipformer import (
    ZIPFORMER_L,
    ZipformerConfig,
    ZipformerModel,
    output_frames,
    parameter_count,
    swoosh_l,
    swoosh_r,
)
from xbench.encoders.weights import WeightsUnavailableError

from conftest import FIXTURES

TINY = ZipformerConfig(
    num_encoder_layers=[1, 1],
    downsampling_factor=[1, 2],
    encoder_dim=[32, 48],
    feedforward_dim=[64, 96],
    num_heads=[2, 2],
    encoder_unmasked_dim=[32, 32],
    cnn_module_kernel=[7, 5],
    query_head_dim=[8],
    value_head_dim=[4],
    pos_head_dim=[2],
    pos_dim=16,
)


def _tiny_model(seed: int = 0) -> ZipformerModel:
    """A tiny model whose parameters are all moved off their (often trivial) initial values."""
    torch.manual_seed(seed)
    model = ZipformerModel(TINY).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def _audio(samples: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return 0.3 * torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))


# --- the network --------------------------------------------------------------------------------------


def test_golden_fixture_matches_auden_zipformer():
    gold = np.load(FIXTURES / "captionstew_zipformer_golden.npz")
    model = ZipformerModel(ZipformerConfig.from_dict(json.loads(str(gold["config"])))).eval()
    state = {k[2:]: torch.from_numpy(gold[k]).float() for k in gold.files if k.startswith("w:")}
    model.load_state_dict(state, strict=True)  # model_batch_count is absent: inserted by the loader
    assert float(model.model_batch_count) == 100000.0
    with torch.no_grad():
        out, lengths = model(torch.from_numpy(gold["features"]), torch.from_numpy(gold["lengths"]))
    assert lengths.tolist() == gold["out_lengths"].tolist() == [36, 24]
    assert np.abs(out.numpy() - gold["out"]).max() <= 1e-5  # padded batch: key masks and conv masks


def test_parameter_counts_match_auden():
    assert parameter_count() == ZIPFORMER_M_PARAMETERS == 65_913_719  # zoo.md: 65.9 M
    assert parameter_count(ZIPFORMER_L) == 152_675_514  # zoo.md: 152.7 M
    assert CARDS[0].parameters == ZIPFORMER_M_PARAMETERS and CARDS[0].weights_url is None


def test_swoosh_closed_forms():
    x = torch.tensor([-50.0, 0.0, 1.0, 4.0, 1000.0], requires_grad=True)
    torch.testing.assert_close(swoosh_l(x)[3], torch.tensor(math.log(2) - 0.32 - 0.035))
    torch.testing.assert_close(swoosh_r(x)[2], torch.tensor(math.log(2) - 0.08 - 0.313261687))
    assert abs(float(swoosh_r(x)[1].detach()) - (math.log1p(math.exp(-1)) - 0.313261687)) < 1e-6
    (swoosh_l(x) + swoosh_r(x)).sum().backward()
    assert torch.isfinite(x.grad).all() and abs(float(x.grad[-1]) - 2 * 0.92) < 1e-5


def test_config_from_auden_dict():
    raw = {**TINY.to_dict(), "query_head_dim": [8], "some_future_field": 1, "model_type": "zipformer"}
    config = ZipformerConfig.from_dict(raw)
    assert config.query_head_dim == [8, 8] and config.output_dim == 48
    with pytest.raises(ValueError, match="causal"):
        ZipformerConfig(causal=True)
    with pytest.raises(ValueError, match="num_heads"):
        ZipformerConfig(num_heads=[4, 4])


def test_output_length_formula():
    model = _tiny_model()
    for frames in (9, 10, 50, 101, 1000):
        with torch.no_grad():
            out, lengths = model(torch.randn(1, frames, 80))
        assert out.shape[1] == lengths.item() == output_frames(frames)
    assert output_frames(1000) == 248  # 10 s


# --- checkpoints in Auden's layouts ----------------------------------------------------------------------


def _expected(model: ZipformerModel, audio: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(fbank(audio))[0]


@pytest.mark.parametrize("layout", ["encoder-safetensors", "clap-pt-ddp", "state_dict-pt", "caption-no-counter"])
def test_auden_layouts_load_strictly_with_identical_outputs(tmp_path, layout):
    model = _tiny_model()
    folder = tmp_path / layout
    extra_state = {"text_decoder.weight": torch.zeros(3)}
    if layout == "encoder-safetensors":
        save_auden_checkpoint(model, folder)
    elif layout == "clap-pt-ddp":
        path = save_auden_checkpoint(
            model, folder, "audio_encoder", {"model_type": "clap"}, extra_state, "pretrained.pt"
        )
        torch.save({f"module.{k}": v for k, v in torch.load(path).items()}, path)
    elif layout == "state_dict-pt":
        path = save_auden_checkpoint(model, folder, file_name="model.pt")
        torch.save({"state_dict": torch.load(path)}, path)
    else:
        config = {"model_type": "audio-caption"}
        path = save_auden_checkpoint(model, folder, "audio_encoder", config, extra_state, "pretrained.pt")
        torch.save({k: v for k, v in torch.load(path).items() if not k.endswith("model_batch_count")}, path)
    state, config = load_auden_checkpoint(folder)
    assert config == TINY and "encoder.downsample_output.bias" in state
    enc = CaptionStewEncoder(checkpoint=folder)
    assert enc.output_dim == 48 and enc.weights_source == str(folder)
    for key, value in model.state_dict().items():
        if key != "model_batch_count" or layout != "caption-no-counter":
            assert torch.equal(enc.model.state_dict()[key], value), key
    audio = _audio(20000)
    with torch.no_grad():
        assert torch.equal(enc(audio), _expected(model, audio))


def test_strict_loading_names_bad_keys(tmp_path):
    model = _tiny_model()
    path = save_auden_checkpoint(model, tmp_path, file_name="model.pt")
    state = torch.load(path)
    torch.save({**state, "encoder.extra.weight": torch.zeros(1)}, path)
    with pytest.raises(RuntimeError, match="encoder.extra.weight"):
        CaptionStewEncoder(checkpoint=tmp_path)
    del state["encoder_embed.out_norm.bias"]
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="encoder_embed.out_norm.bias"):
        CaptionStewEncoder(checkpoint=tmp_path)
    (tmp_path / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="pretrained.safetensors"):
        CaptionStewEncoder(checkpoint=tmp_path)


def test_no_public_weights_offline_message_and_env_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("XBENCH_RANDOM_WEIGHTS", "0")
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    with pytest.raises(WeightsUnavailableError, match=f"no CaptionStew weights are public.*{CHECKPOINT_ENV}"):
        CaptionStewEncoder()
    save_auden_checkpoint(_tiny_model(), tmp_path)
    monkeypatch.setenv(CHECKPOINT_ENV, str(tmp_path))
    assert CaptionStewEncoder().weights_source == str(tmp_path)
    assert CaptionStewEncoder(pretrained=False).weights_source == "random (seed 0)"
    assert "No CaptionStew weights are public" in CARDS[0].description


# --- the X-ARES wrapper ----------------------------------------------------------------------------------


def test_front_end_and_frame_counts(tmp_path):
    save_auden_checkpoint(_tiny_model(), tmp_path)
    enc = CaptionStewEncoder(checkpoint=tmp_path, chunk_seconds=2.0)
    assert fbank(_audio(16000)).shape == (2, 100, 80)
    for samples in (10, 700, MIN_SAMPLES, 8000, 16000, 32000, 32000 + 500, 32000 + 16000):
        with torch.no_grad():
            out = enc(_audio(samples))
        chunks = [min(32000, samples - s) for s in range(0, samples, 32000)]
        expected = sum(max(1, output_frames((n + 80) // 160)) for n in chunks)
        assert out.shape == (2, expected, 48), samples
        assert torch.isfinite(out).all()
    audio = _audio(32000 + 16000)
    with torch.no_grad():  # chunks are encoded independently and concatenated
        whole, first, second = enc(audio), enc(audio[:, :32000]), enc(audio[:, 32000:])
    assert torch.equal(whole, torch.cat([first, second], dim=1))
    with torch.no_grad():
        assert enc(audio[0]).shape == (1, whole.shape[1], 48)


# --- CLAP-style contrastive pretraining ------------------------------------------------------------------

CAPTIONS = [
    "a steady high pitched tone",
    "a low humming tone",
    "loud white noise",
    "a rising chirp",
    "rhythmic clicks",
    "near silence with a faint hiss",
]


def _clips() -> list[torch.Tensor]:
    t = torch.arange(8000) / 16000
    gen = torch.Generator().manual_seed(0)
    return [
        0.5 * torch.sin(2 * math.pi * 2000 * t),
        0.5 * torch.sin(2 * math.pi * 150 * t),
        0.3 * torch.randn(8000, generator=gen),
        0.5 * torch.sin(2 * math.pi * (200 + 3000 * t) * t),
        0.8 * (torch.arange(8000) % 1600 < 40).float(),
        0.01 * torch.randn(8000, generator=gen),
    ]


def test_tokenizer_vocabulary_built_from_captions():
    tok = build_tokenizer(CAPTIONS + ["A tone, again."])
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    assert vocab["a"] == 5 and "," in vocab and "hiss" in vocab  # most frequent first, punctuation split
    ids = tok("A TONE zebra")["input_ids"]
    assert ids == [2, vocab["a"], vocab["tone"], 1, 3]


def test_contrastive_pretraining_loss_falls_and_loads_into_wrapper(tmp_path):
    tok = build_tokenizer(CAPTIONS)
    torch.manual_seed(0)
    model = ClapModel(TINY, text_config(len(tok.get_vocab()), 32, 2, 2, 64, 32), tok, ClapConfig(shared_emb_dim=32))
    clips = _clips()
    losses = train_steps(model, [(clips, CAPTIONS)], steps=30, lr=2e-3)
    chance = 2 * len(CAPTIONS) * math.log(len(CAPTIONS))  # summed symmetric InfoNCE of uniform logits
    assert np.mean(losses[-5:]) < 0.75 * min(np.mean(losses[:5]), chance), losses
    folder = save_clap_checkpoint(model, tmp_path / "clap")
    raw = json.loads((folder / "config.json").read_text())
    assert raw["model_type"] == "clap" and raw["audio_encoder_config"]["model_type"] == "zipformer"
    assert raw["text_encoder_config"]["model_type"] == "bert" and raw["temp"] == 0.07
    enc = CaptionStewEncoder(checkpoint=folder)  # the trained audio encoder, strict load
    audio = torch.stack(clips[:2])
    with torch.no_grad():
        assert torch.equal(enc(audio), _expected(model.audio_encoder, audio))
    back = load_clap_checkpoint(folder)
    with torch.no_grad():
        torch.testing.assert_close(back.encode_text(CAPTIONS), model.encode_text(CAPTIONS), rtol=0, atol=0)
