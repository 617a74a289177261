"""The families' new pretraining parts: BEATs tokenizer distillation and iterations, CaptionStew captioning."""

import json
import math
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from xbench.cli import main
from xbench.data.writer import write_audio_shards
from xbench.encoder.contract import load_encoder
from xbench.encoders.beats.model import VARIANTS, BeatsModel
from xbench.encoders.beats.pretrain.distill import DistillConfig, TokenizerPretraining
from xbench.encoders.beats.pretrain.tokenizer import (
    BeatsTokenizer,
    NormEMAVectorQuantizer,
    kmeans,
    l2norm,
    load_tokenizer,
    tokenizer_checkpoint,
)
from xbench.encoders.captionstew.encoder import CaptionStewEncoder, fbank
from xbench.encoders.captionstew.pretrain.caption import AudioLanguageModel, CaptionConfig, caption_batch
from xbench.encoders.captionstew.pretrain.captions import caption_from_meta, note_name
from xbench.encoders.captionstew.pretrain.clap import build_tokenizer, learn_wordpieces, load_clap_checkpoint
from xbench.encoders.captionstew.zipformer import ZipformerConfig
from xbench.encoders.training import RowRandom, TrainSettings, train_steps

BEATS = replace(
    VARIANTS["base"],
    encoder_layers=1,
    encoder_embed_dim=32,
    encoder_ffn_embed_dim=64,
    encoder_attention_heads=2,
    embed_dim=32,
    conv_pos=16,
    conv_pos_groups=4,
)
ZIPFORMER = ZipformerConfig(
    num_encoder_layers=[1, 1],
    downsampling_factor=[1, 2],
    encoder_dim=[32, 48],
    feedforward_dim=[64, 96],
    num_heads=[2, 2],
    encoder_unmasked_dim=[32, 32],
    cnn_module_kernel=[7, 7],
    query_head_dim=[8],
    value_head_dim=[4],
    pos_head_dim=[2],
    pos_dim=8,
)


def _tones(n: int, samples: int = 16000, seed: int = 0) -> torch.Tensor:
    t = torch.arange(samples) / 16000
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([0.4 * torch.sin(2 * math.pi * (180 + 350 * i) * t) for i in range(n)]) + 0.01 * torch.randn(
        n, samples, generator=gen
    )


# --- BEATs: the trained tokenizer ----------------------------------------------------------------------------


def test_kmeans_improves_on_its_seeds_and_is_deterministic():
    gen = torch.Generator().manual_seed(0)
    centres = l2norm(torch.randn(4, 8, generator=gen))
    points = l2norm(centres.repeat_interleave(50, 0) + 0.05 * torch.randn(200, 8, generator=gen))
    picked, _ = kmeans(points, 4, 0, torch.Generator().manual_seed(1))
    means, counts = kmeans(points, 4, 10, torch.Generator().manual_seed(1))
    fit = float((points @ means.T).max(1).values.mean())
    assert fit > float((points @ picked.T).max(1).values.mean()) and fit > 0.9
    assert int(counts.sum()) == 200 and torch.allclose(means.norm(dim=-1), torch.ones(4))
    assert torch.equal(means, kmeans(points, 4, 10, torch.Generator().manual_seed(1))[0])
    few, few_counts = kmeans(points[:3], 5, 3, torch.Generator().manual_seed(0))  # fewer rows than codes
    assert few.shape == (5, 8) and int(few_counts.sum()) == 3


def test_ema_quantizer_initialises_from_the_first_batch_then_follows_the_data():
    gen = torch.Generator().manual_seed(0)
    vq = NormEMAVectorQuantizer(codes=6, dim=4, decay=0.5)
    z = torch.randn(2, 30, 4, generator=gen, requires_grad=True)
    valid = torch.ones(2, 30, dtype=torch.bool)
    valid[1, 20:] = False  # padding: left out of the codebook and the loss
    quantised, loss, codes, bins = vq(z, valid, torch.Generator().manual_seed(0))
    assert int(vq.embedding.initted) == 1 and int(bins.sum()) == 50 and codes.shape == (2, 30)
    assert torch.allclose(vq.embedding.weight.norm(dim=-1), torch.ones(6))
    assert torch.allclose(quantised, vq.embedding.weight[codes], atol=1e-6)  # the nearest codes, forward
    quantised.sum().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0  # straight through
    assert float(loss.detach()) > 0
    before = vq.embedding.weight.clone()
    vq(torch.randn(2, 30, 4, generator=gen))
    assert not torch.equal(before, vq.embedding.weight)
    vq.eval()
    frozen = vq.embedding.weight.clone()
    vq(torch.randn(2, 30, 4, generator=gen))
    assert torch.equal(frozen, vq.embedding.weight)


def test_tokenizer_distillation_learns_the_teacher_and_keeps_microsofts_layout(tmp_path):
    torch.manual_seed(0)
    teacher = BeatsModel(BEATS)
    student = BeatsTokenizer(BEATS, codebook_size=16, codebook_dim=8)
    model = TokenizerPretraining(student, teacher, DistillConfig(estimator_layers=1))
    waves = _tones(4)
    cosines = []

    def loss(batch, generator):
        value, metrics = model(batch, generator)
        cosines.append(metrics["cosine"])
        assert 0 < metrics["codebook_used"] <= 1 and metrics["codebook_perplexity"] >= 1
        return value

    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    train_steps(model, loss, [waves], 40, TrainSettings(lr=3e-3))
    assert np.mean(cosines[-5:]) > np.mean(cosines[:5]) + 0.2, cosines
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_before.items())  # the teacher is frozen
    checkpoint = tokenizer_checkpoint(student)
    assert checkpoint["cfg"]["quant_n"] == 16 and checkpoint["cfg"]["quant_dim"] == 8
    keys = set(checkpoint["model"])
    assert {"patch_embedding.weight", "quantize_layer.0.weight", "quantize_layer.2.weight"} <= keys
    assert {"quantize.embedding.weight", "quantize.embedding.initted", "quantize.cluster_size"} <= keys
    torch.save(checkpoint, tmp_path / "tokenizer.pt")
    back = load_tokenizer(tmp_path / "tokenizer.pt")
    fb = teacher.fbank(waves)
    assert torch.equal(back(fb), student.eval()(fb)) and not any(p.requires_grad for p in back.parameters())


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("family_shards")
    t = np.arange(16000) / 16000
    notes, speech = [], []
    for i in range(12):
        wave = (0.3 * np.sin(2 * np.pi * 110 * 2 ** (i / 12) * t)).astype(np.float32)
        meta = {"instrument_family_str": ["bass", "flute"][i % 2], "pitch": 45 + i, "velocity": 40 + 10 * i}
        notes.append((f"n{i}", (wave, 16000), meta))
    for i, (lang, gender) in enumerate((lang, g) for lang in ("en", "de", "fi") for g in ("male", "female")):
        wave = (0.2 * np.random.default_rng(i).standard_normal(24000)).astype(np.float32)
        speech.append((f"s{i}", (wave, 16000), {"language": lang, "gender": gender, "text": "one, two"}))
    write_audio_shards(root / "notes", "train-%06d.tar", notes, maxcount=6)
    write_audio_shards(root / "speech", "train-%06d.tar", speech, maxcount=6)
    return root


def _run(tmp_path: Path, shards: Path, recipe: dict, out: Path, *extra: str) -> int:
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    data = [f"notes={shards}/notes/train-*.tar", f"speech={shards}/speech/train-*.tar"]
    return main(["pretrain", str(path), "--data", *data, "--out", str(out), *extra])


MICRO_BEATS = {
    "family": "beats",
    "model": {
        "embed_dim": 32,
        "encoder_embed_dim": 32,
        "encoder_ffn_embed_dim": 64,
        "encoder_attention_heads": 2,
        "encoder_layers": 1,
        "deep_norm": True,
        "relative_position_embedding": True,
        "gru_rel_pos": True,
        "max_distance": 800,
        "conv_pos": 16,
        "conv_pos_groups": 4,
        "dropout": 0.0,
        "attention_dropout": 0.0,
    },
    "objective": {"predictor_layers": 1},
    "tokenizer": {
        "codebook_size": 32,
        "codebook_dim": 16,
        "model": {"encoder_layers": 1},
        "estimator_layers": 1,
        "steps": 3,
    },
    "train": {"lr": 0.002, "warmup_steps": 1, "schedule": "linear"},
    "data": {"batch_size": 3, "crop_seconds": 1.0, "shuffle_buffer": 4},
    "steps": 4,
    "checkpoint_every": 2,
    "log_every": 1,
}


def test_beats_iterations_train_a_tokenizer_between_encoders(tmp_path, shards, capsys):
    out = tmp_path / "beats"
    assert _run(tmp_path, shards, MICRO_BEATS, out, "--iterations", "2") == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["iter1", "iter2", "iter2-tokenizer"]
    header = (out / "iter2-tokenizer" / "log.csv").read_text().splitlines()[0].split(",")
    assert {"codebook_used", "codebook_perplexity", "cosine"} <= set(header)
    assert "accuracy" in (out / "iter2" / "log.csv").read_text().splitlines()[0]
    tokenizer = load_tokenizer(out / "iter2-tokenizer" / "final" / "tokenizer.pt")
    state = torch.load(out / "iter2" / "checkpoints" / "step-000004" / "state.pt", weights_only=True)
    used = {k[len("tokenizer.") :]: v for k, v in state["trainer"]["model"].items() if k.startswith("tokenizer.")}
    assert all(torch.equal(v, used[k]) for k, v in tokenizer.state_dict().items())  # iter2 learnt its codes
    encoder = load_encoder(out / "encoder.py")
    assert type(encoder).__name__ == "PretrainedBEATsEncoder" and encoder.output_dim == 32
    assert "iter2/final/beats.pt" in (out / "encoder.py").read_text()
    capsys.readouterr()
    assert _run(tmp_path, shards, MICRO_BEATS, out, "--iterations", "2", "--resume") == 0
    assert capsys.readouterr().err.count("already finished") == 3


# --- CaptionStew: captions, vocabulary, captioning ----------------------------------------------------------


def test_captions_vary_with_the_seed_and_cover_the_metadata():
    note = {"instrument_family_str": "synth_lead", "pitch": 61, "velocity": 100}
    texts = {caption_from_meta(note, random.Random(i)) for i in range(40)}
    assert len(texts) >= 3 and all("synth lead" in t and "C sharp 4" in t for t in texts)
    assert note_name(60) == "C 4" and note_name(70) == "B flat 4"
    speech = caption_from_meta({"language": "fi", "gender": "female", "text": "hello"}, random.Random(0))
    assert "Finnish" in speech and "hello" in speech
    mix = caption_from_meta({"instrument_families": "bass;organ;reed"}, random.Random(0))
    assert all(f in mix for f in ("bass", "organ", "reed"))
    notes = [{"note": 60, "start": 0, "end": 1}, {"note": 72, "start": 1, "end": 2}]
    melody = caption_from_meta(notes, random.Random(1))
    assert "2 notes" in melody or "C 5" in melody
    assert caption_from_meta({"caption": "rain on a roof", "x": 1}, random.Random(0)) == "rain on a roof"
    assert caption_from_meta({"colour": "red"}, random.Random(0)) == "a sound: colour red"


def test_wordpiece_vocabulary_is_deterministic_and_splits_unseen_words():
    counts = {"playing": 9, "player": 5, "plays": 4, "bass": 7, "brass": 3}
    from collections import Counter

    pieces = learn_wordpieces(Counter(counts), 30)
    assert pieces == learn_wordpieces(Counter(dict(reversed(list(counts.items())))), 30)
    assert len(pieces) == 30 and {"p", "##p", "b", "##b", "##ing"} <= set(pieces)
    assert len(learn_wordpieces(Counter(counts), 5)) == 22  # the alphabet (11 letters, both forms) is kept
    captions = ["a bass playing", "the player plays", "brass playing"] * 3
    tok = build_tokenizer(captions, vocab_size=60)
    assert tok.tokenize("a bass playing") == ["a", "bass", "playing"]
    assert tok.tokenize("bassplay") and "[UNK]" not in tok.tokenize("bassplay")  # split into known pieces
    assert tok.get_vocab() == build_tokenizer(captions, 1, 60).get_vocab()


CAPTIONS = ["a low bass tone", "a high flute tone", "white noise", "a rising chirp"]


def _model(parallel: float) -> AudioLanguageModel:
    torch.manual_seed(0)
    tok = build_tokenizer(CAPTIONS)
    cfg = CaptionConfig(
        decoder_dim=32, decoder_layers=1, decoder_heads=2, decoder_ffn=64, dropout=0.0, parallel_fraction=parallel
    )
    return AudioLanguageModel(ZIPFORMER, tok, cfg)


def test_autoregressive_rows_are_causal_and_parallel_rows_see_only_audio():
    model = _model(0.5).eval()
    inputs, targets, padding = caption_batch(model.tokenizer, CAPTIONS[:2], 16)
    assert inputs[0, 0] == model.tokenizer.cls_token_id
    assert targets[0, (~padding[0]).sum() - 1] == model.tokenizer.sep_token_id
    memory = torch.randn(2, 5, 32)
    changed = inputs.clone()
    changed[:, 2:] = model.tokenizer.mask_token_id
    causal = torch.tensor([True, True])
    with torch.no_grad():
        a = model.text_decoder(inputs, memory, None, padding, causal)
        b = model.text_decoder(changed, memory, None, padding, causal)
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-6) and not torch.allclose(a[:, 2:], b[:, 2:])
    frames, lengths = torch.randn(8, 5, 48), torch.full((8,), 5)

    def share(fraction: float, seeds: list[int]) -> float:
        model.caption_config = replace(model.caption_config, parallel_fraction=fraction)
        return model.caption_loss(frames, lengths, CAPTIONS * 2, RowRandom(seeds))[1]["parallel_share"]

    assert share(0.0, list(range(8))) == 0.0 and share(1.0, list(range(8))) == 1.0
    assert 0 < share(0.5, list(range(8))) < 1 and share(0.5, list(range(8))) == share(0.5, list(range(8)))
    assert share(0.5, [3] * 8) in (0.0, 1.0)  # the mode is the clip's own draw


def test_captioning_loss_falls_and_the_checkpoint_loads_in_the_wrapper(tmp_path):
    model = _model(0.75)
    waves = _tones(4, 12000)
    waves[2] = 0.3 * torch.randn(12000, generator=torch.Generator().manual_seed(3))
    features = fbank(waves)
    lengths = torch.full((4,), features.shape[1])
    losses = train_steps(
        model, lambda batch, g: model(features, lengths, CAPTIONS, RowRandom([1, 2, 3, 4]))[0], [0], 40, lr=3e-3
    )
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    from xbench.encoders.captionstew.pretrain.clap import save_clap_checkpoint

    folder = save_clap_checkpoint(model, tmp_path / "caption")
    raw = json.loads((folder / "config.json").read_text())
    assert raw["model_type"] == "audio_caption" and raw["caption_config"]["decoder_dim"] == 32
    enc = CaptionStewEncoder(checkpoint=folder)
    with torch.no_grad():
        assert torch.equal(enc.model(features)[0], model.audio_encoder.eval()(features)[0])
    back = load_clap_checkpoint(folder)
    assert isinstance(back, AudioLanguageModel)
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())


MICRO_CAPTIONSTEW = {
    "family": "captionstew",
    "model": {
        "num_encoder_layers": [1, 1],
        "downsampling_factor": [1, 2],
        "encoder_dim": [32, 48],
        "feedforward_dim": [64, 96],
        "num_heads": [2, 2],
        "encoder_unmasked_dim": [32, 32],
        "cnn_module_kernel": [7, 7],
        "query_head_dim": [8],
        "value_head_dim": [4],
        "pos_head_dim": [2],
        "pos_dim": 8,
    },
    "decoder": {"decoder_dim": 32, "decoder_layers": 1, "decoder_heads": 2, "decoder_ffn": 64, "max_tokens": 24},
    "objective": {"caption_weight": 1.0, "contrastive_weight": 0.05, "shared_emb_dim": 16},
    "text_encoder": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32},
    "tokenizer": {"vocab_size": 400, "captions_per_clip": 2},
    "train": {"lr": 0.002},
    "data": {"batch_size": 3, "crop_seconds": 1.0, "shuffle_buffer": 4},
    "steps": 3,
    "checkpoint_every": 2,
    "log_every": 1,
}


def test_captionstew_recipe_trains_its_tokenizer_and_writes_an_auden_directory(tmp_path, shards):
    out = tmp_path / "cs"
    assert _run(tmp_path, shards, MICRO_CAPTIONSTEW, out) == 0
    vocab = json.loads((out / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
    assert 30 < len(vocab) < 400 and "flute" in vocab and "finnish" in vocab  # every word merged whole
    header = (out / "log.csv").read_text().splitlines()[0].split(",")
    assert {"captioning", "contrastive", "caption_accuracy", "parallel_share"} <= set(header)
    assert json.loads((out / "final" / "config.json").read_text())["model_type"] == "clap_caption"
    encoder = load_encoder(out / "encoder.py")
    assert type(encoder).__name__ == "PretrainedCaptionStewEncoder" and encoder.output_dim == 48
    with torch.no_grad():
        assert encoder(torch.zeros(1, 16000)).shape == (1, 23, 48)  # ((100 - 7) // 2 + 1) // 2 frames
    untrained = load_encoder(out / "encoder_init.py")
    x = _tones(1)
    with torch.no_grad():
        assert not torch.equal(encoder(x), untrained(x))


@pytest.mark.parametrize("recipe", [MICRO_BEATS, MICRO_CAPTIONSTEW], ids=["beats", "captionstew"])
def test_every_family_trains_under_torchrun(tmp_path, shards, recipe):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps({**recipe, "steps": 2}))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "xbench"]
    command += ["pretrain", str(path), "--out", str(tmp_path / "out"), "--data"]
    command += [f"notes={shards}/notes/train-*.tar", f"speech={shards}/speech/train-*.tar"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(tmp_path / "out" / "encoder.py")  # one line, from rank 0
    assert load_encoder(tmp_path / "out" / "encoder.py").output_dim in (32, 48)
