"""``hf:`` models: every family's tiny config saved with save_pretrained and loaded by folder (frames, hop, dimension,
layer choice), the revision recorded as a commit hash (a Hugging Face cache laid out on disk, offline), remote code
only with trust_remote_code, and the one-line refusals."""

import json
import math

import numpy as np
import pytest
import torch
import transformers
from test_hf_encoders import _TINY, TINY_CONFIGS, TINY_WHISPER, _audio
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    ASTModel,
    BertConfig,
    BertModel,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    EncodecConfig,
    EncodecModel,
    SeamlessM4TFeatureExtractor,
    Wav2Vec2BertConfig,
    Wav2Vec2BertModel,
    Wav2Vec2FeatureExtractor,
    WhisperModel,
)

from xbench.encoder.contract import EncoderLoadError, load_encoder
from xbench.encoder.identity import encoder_identity
from xbench.encoder.spec import EncoderSpec, encoder_name
from xbench.encoders.hf.auto import HFModelError
from xbench.encoders.hf.encoder import random_model
from xbench.encoders.hf.whisper import HFWhisperEncoder

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _save(model, folder, extractor=None):
    model.save_pretrained(folder)
    if extractor is not None:
        extractor.save_pretrained(folder)
    return f"hf:{folder}"


def _load(spec: str, layer=None, trust: bool = False):
    return load_encoder(EncoderSpec(spec, layer=layer, trust_remote_code=trust))


def _tiny_ast() -> ASTModel:
    torch.manual_seed(0)
    config = ASTConfig(**_TINY, max_length=128, num_mel_bins=32)
    return ASTModel(config).eval()


def _tiny_clap() -> ClapModel:
    torch.manual_seed(0)
    audio = dict(
        hidden_size=16,
        patch_embeds_hidden_size=4,
        depths=[1, 1, 1],
        num_attention_heads=[1, 1, 1],
        spec_size=64,
        window_size=2,
        num_mel_bins=16,
        projection_dim=8,
    )
    text = dict(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    return ClapModel(ClapConfig(audio_config=audio, text_config={**text, "projection_dim": 8}, projection_dim=8)).eval()


# --- wav2vec2-style CNN front ends -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_cnn_families_by_folder_frames_hop_dim_and_layers(tmp_path, family):
    model = random_model(TINY_CONFIGS[family], seed=1).eval()
    spec = _save(model, tmp_path, Wav2Vec2FeatureExtractor(do_normalize=False))
    enc = _load(spec)
    # 80-sample stride at 16 kHz from the config: 5 ms frames, 16-d
    assert (enc.sampling_rate, enc.hop_size_in_ms, enc.output_dim) == (16000, 5.0, 16)
    audio = _audio(4000)
    with torch.no_grad():
        states = model(audio, output_hidden_states=True)
        assert torch.equal(enc(audio), states.last_hidden_state)
        assert enc(audio).shape[1] == 4000 // 80 == 50
        assert torch.equal(_load(spec, layer="1")(audio), states.hidden_states[1])
        assert torch.equal(_load(spec, layer=0)(audio), states.hidden_states[0])
        mean = torch.stack(states.hidden_states).mean(0)
        torch.testing.assert_close(_load(spec, layer="mean")(audio), mean, rtol=0, atol=1e-6)
    with pytest.raises(HFModelError, match=r"layer 3 does not exist \(hidden states 0\.\.2; or last, mean\)"):
        _load(spec, layer=3)
    with pytest.raises(HFModelError, match="layer must be"):
        _load(spec, layer="first")


def test_whisper_by_folder_hop_trim_and_layer(tmp_path):
    torch.manual_seed(2)
    model = WhisperModel(TINY_WHISPER).eval()
    spec = _save(model, tmp_path)
    enc = _load(spec, layer=1)
    assert isinstance(enc, HFWhisperEncoder)
    assert (enc.sampling_rate, enc.hop_size_in_ms, enc.output_dim) == (16000, 20.0, 16)
    audio = _audio(8000)
    with torch.no_grad():
        out = enc(audio)
        ref = HFWhisperEncoder.from_model(model, layer=1)(audio)
    assert out.shape == (2, math.ceil(8000 / 320), 16) and torch.equal(out, ref)
    with pytest.raises(HFModelError, match="layer 2 does not exist"):
        _load(spec, layer=2)


# --- spectrogram transformers and codecs -------------------------------------------------------------------------


def test_ast_patches_averaged_over_frequency_per_time_step(tmp_path):
    model = _tiny_ast()
    extractor = ASTFeatureExtractor(num_mel_bins=32, max_length=128)
    enc = _load(_save(model, tmp_path, extractor))
    # 10 frames of 10 ms per time step: 100 ms; a chunk is the 128 fbank frames the model takes
    assert (enc.sampling_rate, enc.hop_size_in_ms, enc.output_dim) == (16000, 100.0, 16)
    assert (enc.freq_steps, enc.time_steps, enc.chunk_samples) == (2, 12, 127 * 160 + 400)
    for samples, frames in ((100, 1), (8000, 5), (16000, 10), (20720, 12), (20720 + 16000, 22)):
        with torch.no_grad():
            assert enc(_audio(samples)).shape == (2, frames, 16), samples
    audio = _audio(16000)
    with torch.no_grad():
        values = extractor(list(audio.numpy()), sampling_rate=16000, return_tensors="pt")["input_values"]
        states = model(values, output_hidden_states=True)
        for layer, hidden in (("last", states.last_hidden_state), (1, states.hidden_states[1])):
            expected = hidden[:, 2:].reshape(2, 2, 12, 16).mean(1)[:, :10]  # frequency-major patch order
            torch.testing.assert_close(_load(f"hf:{tmp_path}", layer=layer)(audio), expected, rtol=0, atol=1e-6)


def test_clap_audio_tower_frames_and_only_the_last_layer(tmp_path):
    model = _tiny_clap()
    extractor = ClapFeatureExtractor(feature_size=16, max_length_s=2)
    spec = _save(model, tmp_path, extractor)
    enc = _load(spec)
    # spec 64 / patch 4 / 2 ** 2 merges * frequency ratio 4 = 16 steps per 2 s chunk at 48 kHz: 125 ms
    assert (enc.sampling_rate, enc.hop_size_in_ms, enc.output_dim, enc.steps) == (48000, 125.0, 16, 16)
    for samples, frames in ((100, 1), (48000, 8), (96000, 16), (96000 + 6000, 17)):
        with torch.no_grad():
            assert enc(_audio(samples)).shape == (2, frames, 16), samples
    audio = _audio(96000)
    with torch.no_grad():
        inputs = extractor(list(audio.numpy()), sampling_rate=48000, return_tensors="pt", truncation="rand_trunc")
        fmap = model.audio_model(input_features=inputs["input_features"]).last_hidden_state
        torch.testing.assert_close(enc(audio), fmap.mean(2).transpose(1, 2), rtol=0, atol=1e-6)
        torch.testing.assert_close(enc(audio[:1]), enc(audio)[:1], rtol=0, atol=1e-5)  # no batch-dependent path
    with pytest.raises(HFModelError, match="only --layer last"):
        _load(spec, layer=1)


def test_encodec_encoder_before_quantisation(tmp_path):
    torch.manual_seed(0)
    config = EncodecConfig(
        hidden_size=16, num_filters=4, upsampling_ratios=[4, 2], codebook_size=16, codebook_dim=16, num_lstm_layers=1
    )
    model = EncodecModel(config).eval()
    spec = _save(model, tmp_path)
    enc = _load(spec)
    assert (enc.sampling_rate, enc.hop_size_in_ms, enc.output_dim) == (24000, 1000 * 8 / 24000, 16)
    audio = _audio(1001)
    with torch.no_grad():
        out = enc(audio)
        assert out.shape == (2, math.ceil(1001 / 8), 16)
        assert torch.equal(out, model.encoder(audio.unsqueeze(1)).transpose(1, 2))
    with pytest.raises(HFModelError, match="only --layer last"):
        _load(spec, layer="mean")


def test_any_model_with_an_audio_feature_extractor(tmp_path):
    torch.manual_seed(0)
    config = Wav2Vec2BertConfig(**_TINY, output_hidden_size=16, conv_depthwise_kernel_size=3, add_adapter=False)
    model = Wav2Vec2BertModel(config).eval()
    extractor = SeamlessM4TFeatureExtractor()
    spec = _save(model, tmp_path, extractor)
    enc = _load(spec, layer=2)
    assert type(enc).__name__ == "HFGenericEncoder"
    # the hop is measured: 50 more frames for one more second
    assert (enc.sampling_rate, enc.hop_size_in_ms, enc.output_dim) == (16000, 20.0, 16)
    audio = _audio(24000)
    with torch.no_grad():
        inputs = extractor(list(audio.numpy()), sampling_rate=16000, return_tensors="pt")
        expected = model(**inputs, output_hidden_states=True).hidden_states[2]
        assert torch.equal(enc(audio), expected) and expected.shape[1] == 74


def test_a_model_without_audio_input_is_refused(tmp_path, capsys):
    from xbench.cli import main

    config = BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(config).save_pretrained(tmp_path)
    with pytest.raises(HFModelError, match="model_type 'bert' is not an audio model"):
        _load(f"hf:{tmp_path}")
    capsys.readouterr()
    assert main(["check", "--encoder", f"hf:{tmp_path}"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: hf:") and "not an audio model" in errors[0]
    assert "Traceback" not in err


# --- remote code -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def modules_cache(tmp_path_factory) -> str:
    """One remote-code module cache for the module's tests: transformers imports ``transformers_modules`` from the
    first cache a process uses, so a second cache in the same process is not found (a real run has one)."""
    return str(tmp_path_factory.mktemp("modules"))


def _remote_code_model(folder) -> torch.nn.Module:
    """A MERT-like repository: a wav2vec2 subclass in the folder's own Python files, at 24 kHz."""
    model = random_model(TINY_CONFIGS["wav2vec2"], seed=3).eval()
    model.save_pretrained(folder)
    (folder / "configuration_tinymert.py").write_text(
        "from transformers import Wav2Vec2Config\n\n\n"
        "class TinyMertConfig(Wav2Vec2Config):\n    model_type = 'tiny-mert'\n"
    )
    (folder / "modeling_tinymert.py").write_text(
        "from transformers import Wav2Vec2Model\n\nfrom .configuration_tinymert import TinyMertConfig\n\n\n"
        "class TinyMertModel(Wav2Vec2Model):\n    config_class = TinyMertConfig\n"
    )
    config = json.loads((folder / "config.json").read_text())
    auto = {"AutoConfig": "configuration_tinymert.TinyMertConfig", "AutoModel": "modeling_tinymert.TinyMertModel"}
    config.update(model_type="tiny-mert", architectures=["TinyMertModel"], auto_map=auto)
    (folder / "config.json").write_text(json.dumps(config))
    Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=False).save_pretrained(folder)
    return model


def test_remote_code_only_with_trust_remote_code(tmp_path, monkeypatch, capsys, modules_cache):
    from xbench.cli import main

    monkeypatch.setattr(transformers.dynamic_module_utils, "HF_MODULES_CACHE", modules_cache)
    folder = tmp_path / "tiny-mert"
    model = _remote_code_model(folder)
    with pytest.raises(HFModelError, match=r"auto_map: AutoConfig, AutoModel\); pass --trust-remote-code"):
        _load(f"hf:{folder}")
    assert main(["check", "--encoder", f"hf:{folder}"]) == 2
    assert "pass --trust-remote-code" in capsys.readouterr().err
    enc = _load(f"hf:{folder}", trust=True)
    assert type(enc.model).__name__ == "TinyMertModel"
    assert (enc.sampling_rate, enc.hop_size_in_ms) == (24000, 1000 * 80 / 24000)  # rate from the preprocessor
    assert enc.output_dim == 16
    audio = _audio(4800)
    with torch.no_grad():
        states = model(audio, output_hidden_states=True)
        assert torch.equal(enc(audio), states.last_hidden_state) and enc(audio).shape[1] == 4800 // 80 == 60
        assert torch.equal(_load(f"hf:{folder}", layer=1, trust=True)(audio), states.hidden_states[1])
    code = encoder_identity(enc)["settings"]["remote_code_sha256"]
    assert set(code) == {"configuration_tinymert.py", "modeling_tinymert.py"}
    with pytest.raises(EncoderLoadError, match="applies to hf: models only"):
        load_encoder(EncoderSpec("logmel", trust_remote_code=True))


# --- hub ids: revision resolved to the commit hash and recorded --------------------------------------------


def _hubert(folder) -> None:
    random_model(TINY_CONFIGS["hubert"], seed=5).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(folder)


def _hub_cache(tmp_path, monkeypatch, name: str = "tiny", write=_hubert) -> None:
    """A Hugging Face cache holding org/<name> (written into its snapshot by ``write(folder)``) at COMMIT (refs/main
    and a tag), offline."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    repo = cache / f"models--org--{name}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    write(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "refs" / "v1.0").write_text(COMMIT)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _whisper(folder) -> None:
    torch.manual_seed(2)
    WhisperModel(TINY_WHISPER).eval().save_pretrained(folder)


def _encodec(folder) -> None:
    torch.manual_seed(0)
    config = EncodecConfig(
        hidden_size=16, num_filters=4, upsampling_ratios=[4, 2], codebook_size=16, codebook_dim=16, num_lstm_layers=1
    )
    EncodecModel(config).eval().save_pretrained(folder)


def _generic(folder) -> None:
    torch.manual_seed(0)
    config = Wav2Vec2BertConfig(**_TINY, output_hidden_size=16, conv_depthwise_kernel_size=3, add_adapter=False)
    _save(Wav2Vec2BertModel(config).eval(), folder, SeamlessM4TFeatureExtractor())


HUB_FAMILIES = {
    **{
        family: lambda folder, family=family: _save(
            random_model(TINY_CONFIGS[family], seed=1).eval(), folder, Wav2Vec2FeatureExtractor(do_normalize=False)
        )
        for family in TINY_CONFIGS
    },
    "whisper": _whisper,
    "ast": lambda folder: _save(_tiny_ast(), folder, ASTFeatureExtractor(num_mel_bins=32, max_length=128)),
    "clap": lambda folder: _save(_tiny_clap(), folder, ClapFeatureExtractor(feature_size=16, max_length_s=2)),
    "encodec": _encodec,
    "wav2vec2-bert": _generic,
    "remote-code": _remote_code_model,
}


@pytest.mark.parametrize("family", sorted(HUB_FAMILIES))
def test_every_family_records_its_hub_revision(tmp_path, monkeypatch, family, modules_cache):
    """The commit a hub id resolves to is recorded for every family the loader knows, remote code included."""
    monkeypatch.setattr(transformers.dynamic_module_utils, "HF_MODULES_CACHE", modules_cache)
    _hub_cache(tmp_path, monkeypatch, family, HUB_FAMILIES[family])
    spec = f"hf:org/{family}@v1.0"
    enc = _load(spec, trust=family == "remote-code")
    identity = encoder_identity(enc)
    assert identity["settings"]["revision"] == COMMIT and identity["settings"]["model"] == f"org/{family}"
    assert encoder_name(EncoderSpec(spec), identity) == f"hf:org/{family}@{COMMIT[:12]}"
    with torch.no_grad():
        assert enc(_audio(enc.sampling_rate // 2)).shape[-1] == enc.output_dim == 16


@pytest.mark.parametrize("revision", ["", "@main", "@v1.0", f"@{COMMIT}"])
def test_hub_id_revision_recorded_as_the_commit(tmp_path, monkeypatch, revision):
    _hub_cache(tmp_path, monkeypatch)
    spec = f"hf:org/tiny{revision}"
    enc = _load(spec, layer=2)
    identity = encoder_identity(enc)
    assert identity["settings"]["revision"] == COMMIT and identity["settings"]["model"] == "org/tiny"
    assert identity["settings"]["layer"] == 2
    assert enc.display_name == f"hf:org/tiny@{COMMIT[:12]}"
    assert encoder_name(EncoderSpec(spec, layer=2), identity) == f"hf:org/tiny@{COMMIT[:12]}-layer2"
    assert encoder_name(EncoderSpec(spec, name="mine"), identity) == "mine"


def test_unknown_revision_or_repository_offline_is_one_line(tmp_path, monkeypatch):
    _hub_cache(tmp_path, monkeypatch)
    with pytest.raises(HFModelError, match=r"'org/tiny' at revision 'v2' is not available locally") as info:
        _load("hf:org/tiny@v2")
    assert "\n" not in str(info.value)
    with pytest.raises(HFModelError, match="'org/other' is not available locally"):
        _load("hf:org/other")
    for bad in ("hf:", "hf:org/tiny@", "hf:bad name"):
        with pytest.raises(HFModelError, match="hf:ORG/NAME"):
            _load(bad)


def test_a_run_names_and_records_the_hf_model(tmp_path, monkeypatch):
    """End to end: the result names the model by id and commit and records both in the encoder identity."""
    from xbench.pipeline.run import RunOptions, evaluate

    from conftest import clip_task, tone_items

    _hub_cache(tmp_path, monkeypatch)
    splits = {
        split: tone_items(seed, ["a", "b"] * 2, {"a": 300.0, "b": 2000.0}, split[:2])
        for seed, split in enumerate(("train", "valid", "test"))
    }
    task = clip_task(tmp_path / "data", "hfrun", splits, ("a", "b"), epochs=1)
    out, cache = str(tmp_path / "out"), str(tmp_path / "cache")
    opts = RunOptions(tracks=("knn",), output_dir=out, cache_root=cache, bootstrap_rounds=5, show_progress=False)
    frame = evaluate(EncoderSpec("hf:org/tiny@main"), [task], opts)
    slug = frame.encoder.iloc[0]
    assert slug.startswith(f"hf_org_tiny@{COMMIT[:12]}-")
    record = json.loads((tmp_path / "out" / slug / "xbench" / "hfrun@v1.json").read_text())
    assert record["encoder"]["settings"]["revision"] == COMMIT
    assert np.isfinite(frame.score.iloc[0])
