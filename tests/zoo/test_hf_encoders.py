"""transformers baselines: cards, offline builds, normalisation, Whisper log-mel and frames, save/load round trips."""

import json
import math

import numpy as np
import pytest
import torch
from transformers import (
    AutoModel,
    Data2VecAudioConfig,
    HubertConfig,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    WavLMConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperModel,
)
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from xbench.encoders.hf import CARDS, MODELS, env_name
from xbench.encoders.hf.encoder import (
    HFAudioEncoder,
    HubertBaseEncoder,
    Wav2Vec2LargeVoxPopuliEncoder,
    normalise,
    random_model,
    reference_config,
    resolve_model_folder,
)
from xbench.encoders.hf.whisper import HFWhisperEncoder, whisper_log_mel
from xbench.encoders.weights import WeightsUnavailableError

_TINY = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
_TINY_CONV = {"conv_dim": [8, 8, 8], "conv_kernel": [10, 3, 2], "conv_stride": [5, 4, 4]}  # 80 samples = 5 ms
TINY_CONFIGS = {
    "wav2vec2": Wav2Vec2Config(**_TINY, **_TINY_CONV, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2),
    "wav2vec2-stable": Wav2Vec2Config(
        **_TINY,
        **_TINY_CONV,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        conv_bias=True,
    ),
    "data2vec-audio": Data2VecAudioConfig(**_TINY, **_TINY_CONV, num_conv_pos_embedding_groups=2),
    "hubert": HubertConfig(**_TINY, **_TINY_CONV, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2),
    "wavlm": WavLMConfig(**_TINY, **_TINY_CONV, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2),
}
TINY_WHISPER = WhisperConfig(
    d_model=16,
    encoder_layers=1,
    encoder_attention_heads=2,
    encoder_ffn_dim=32,
    decoder_layers=1,
    decoder_attention_heads=2,
    decoder_ffn_dim=32,
    vocab_size=51865,  # keeps the default special-token ids valid
    num_mel_bins=80,
    max_source_positions=1500,
    max_target_positions=16,
)


def _audio(samples: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    x = 0.1 * torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))
    x[-1, samples // 2 :] = 0.0  # a right-padded clip
    return x


# --- cards and configs -----------------------------------------------------------------------------------


def test_cards_count_parameters_of_config_built_models():
    assert {c.name for c in CARDS} == set(MODELS)
    for card in CARDS:
        config = reference_config(MODELS[card.name][0])
        with torch.device("meta"):
            model = WhisperEncoder(config) if card.name == "whisper-base" else AutoModel.from_config(config)
        assert sum(p.numel() for p in model.parameters()) == card.parameters, card.name
        dim = config.d_model if card.name == "whisper-base" else config.hidden_size
        assert (dim, card.hop_size_in_ms, card.weights_url) == (card.output_dim, 20, None)
        assert MODELS[card.name][0] in card.description and env_name(card.name) in card.description
    voxpopuli = reference_config("facebook/wav2vec2-large-100k-voxpopuli")
    assert (voxpopuli.num_hidden_layers, voxpopuli.feat_extract_norm, voxpopuli.do_stable_layer_norm) == (
        24,
        "layer",
        True,
    )
    assert env_name("wav2vec2-large-100k-voxpopuli") == "XBENCH_HF_WAV2VEC2_LARGE_100K_VOXPOPULI"


def test_offline_error_names_model_id_and_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("XBENCH_RANDOM_WEIGHTS", "0")
    monkeypatch.setenv("XBENCH_OFFLINE", "1")
    monkeypatch.delenv("XBENCH_HF_HUBERT_BASE", raising=False)
    with pytest.raises(
        WeightsUnavailableError, match=r"'facebook/hubert-base-ls960'.*\$XBENCH_HF_HUBERT_BASE.*\$HF_HOME"
    ):
        HubertBaseEncoder()
    with pytest.raises(WeightsUnavailableError, match=r"'someone/unknown-model'.*\$HF_HOME"):
        resolve_model_folder("someone/unknown-model", offline=True)
    monkeypatch.setenv("XBENCH_HF_HUBERT_BASE", str(tmp_path / "missing"))
    with pytest.raises(WeightsUnavailableError, match="is not a folder"):
        HubertBaseEncoder()


# --- normalisation, frames, layers ------------------------------------------------------------------------


def test_normalisation_matches_feature_extractor():
    x = _audio(12345) * 3 + 0.2
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True)
    ref = fe(list(x.numpy()), sampling_rate=16000, return_tensors="np")["input_values"]
    assert np.abs(normalise(x).numpy() - ref).max() < 1e-5


@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_frames_follow_hop_and_chunks_are_trimmed(family):
    model = random_model(TINY_CONFIGS[family])
    enc = HFAudioEncoder.from_model(model, do_normalize=True, chunk_seconds=1.0)  # 1 s chunks, 5 ms frames here
    assert enc.receptive_field == 40 and enc.frames(40) == 1 and enc.frames(39) == 0
    for samples in (5, 30, 800, 16000, 16000 + 100, 40000):
        with torch.no_grad():
            out = enc(_audio(samples))
        chunks = [min(16000, samples - s) for s in range(0, samples, 16000)]
        assert out.shape == (2, sum(max(1, enc.frames(n)) for n in chunks), 16), (family, samples)
        assert torch.isfinite(out).all()
    audio = _audio(16000 + 100)
    with torch.no_grad():  # the 100-sample tail is padded to 1 s, encoded alone and trimmed
        tail = enc._hidden(torch.nn.functional.pad(normalise(audio[:, 16000:]), (0, 15900)))[:, : enc.frames(100)]
        torch.testing.assert_close(enc(audio), torch.cat([enc(audio[:, :16000]), tail], dim=1), rtol=0, atol=0)


def test_layer_selection_and_whisper_rejected():
    model = random_model(TINY_CONFIGS["wav2vec2-stable"]).eval()
    audio = _audio(4000)
    with torch.no_grad():
        states = model(audio, output_hidden_states=True)
        last = HFAudioEncoder.from_model(model, do_normalize=False)(audio)
        first = HFAudioEncoder.from_model(model, layer=0, do_normalize=False)(audio)
        second = HFAudioEncoder.from_model(model, layer=2, do_normalize=False)(audio)
    assert torch.equal(last, states.last_hidden_state)  # after the final LayerNorm of this pre-norm model
    assert torch.equal(first, states.hidden_states[0]) and torch.equal(second, states.hidden_states[2])
    with pytest.raises(ValueError, match="HFWhisperEncoder"):
        HFAudioEncoder.from_model(WhisperModel(TINY_WHISPER))


# --- save_pretrained / from_pretrained round trips --------------------------------------------------------


@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_save_pretrained_round_trip_gives_identical_outputs(tmp_path, family):
    model = random_model(TINY_CONFIGS[family], seed=3).eval()
    model.save_pretrained(tmp_path)
    do_normalize = family != "wavlm"
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": do_normalize}))
    loaded = HFAudioEncoder(tmp_path, pretrained=True)
    assert loaded.do_normalize is do_normalize and loaded.weights_source == str(tmp_path)
    audio = _audio(7000)
    with torch.no_grad():
        assert torch.equal(loaded(audio), HFAudioEncoder.from_model(model, do_normalize=do_normalize)(audio))
    # random weights from the folder's config, no weights read
    assert HFAudioEncoder(tmp_path, pretrained=False).weights_source == "random (seed 0)"


def test_named_entry_loads_from_its_environment_variable(tmp_path, monkeypatch):
    model = random_model(TINY_CONFIGS["hubert"], seed=4).eval()
    model.save_pretrained(tmp_path)  # no preprocessor_config.json: HuBERT base's default (no normalisation)
    monkeypatch.setenv("XBENCH_HF_HUBERT_BASE", str(tmp_path))
    enc = HubertBaseEncoder(pretrained=True)
    assert enc.weights_source == str(tmp_path) and enc.do_normalize is False and enc.output_dim == 16
    audio = _audio(3000)
    with torch.no_grad():
        assert torch.equal(enc(audio), model(audio).last_hidden_state)


@pytest.mark.parametrize("head", [False, True])
def test_whisper_save_pretrained_round_trip(tmp_path, head):
    torch.manual_seed(5)
    model = (WhisperForConditionalGeneration if head else WhisperModel)(TINY_WHISPER).eval()
    model.save_pretrained(tmp_path)
    loaded = HFWhisperEncoder(tmp_path, pretrained=True)
    audio = _audio(20000)
    with torch.no_grad():
        out = loaded(audio)
        assert torch.equal(out, HFWhisperEncoder.from_model(model)(audio))
    assert out.shape == (2, math.ceil(20000 / 320), 16)


# --- Whisper front-end and frames ------------------------------------------------------------------------


@pytest.mark.parametrize("samples", [400, 8000, 16000 * 7 + 3, 480000, 500000])
def test_whisper_log_mel_matches_feature_extractor(samples):
    audio = _audio(samples)
    fe = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400)
    ref = fe(list(audio.numpy()), sampling_rate=16000, return_tensors="np")["input_features"]
    mine = whisper_log_mel(audio).numpy()
    assert mine.shape == ref.shape == (2, 80, 3000)
    assert np.abs(mine - ref).max() <= 1e-4


def test_whisper_true_hop_trimmed_and_chunked():
    torch.manual_seed(6)
    enc = HFWhisperEncoder.from_model(WhisperEncoder(TINY_WHISPER))
    assert enc.hop_size_in_ms == 20.0 and enc.output_dim == 16
    for samples in (100, 8000, 16000, 480000, 480000 + 16000):
        with torch.no_grad():
            out = enc(_audio(samples, batch=1))
        chunks = [min(480000, samples - s) for s in range(0, samples, 480000)]
        assert out.shape[1] == sum(math.ceil(n / 320) for n in chunks) == math.ceil(samples / 320), samples
    audio = _audio(8000)
    with torch.no_grad():  # the kept frames are the first of the encoder's 1500 on the padded 30 s
        full = enc.encoder(input_features=whisper_log_mel(audio)).last_hidden_state
        assert full.shape[1] == 1500 and torch.equal(enc(audio), full[:, :25])


@pytest.mark.slow
def test_wav2vec2_large_voxpopuli_builds_from_config_offline():
    enc = Wav2Vec2LargeVoxPopuliEncoder(pretrained=False)
    assert enc.do_normalize is True and enc.output_dim == 1024
    assert sum(p.numel() for p in enc.parameters()) == 315_438_720
    with torch.no_grad():
        assert enc(_audio(16000, batch=1)).shape == (1, 49, 1024)
