"""ASR probe: a tiny offline causal-LM decoder, sequence layout, training, determinism, evaluate()."""

import json

import numpy as np
import pytest
import torch

from xbench.data.writer import write_audio_shards
from xbench.encoders.baselines import LogMelEncoder
from xbench.pipeline.run import RunOptions, evaluate
from xbench.probes import asr as ap
from xbench.scoring.metrics import word_error_rate
from xbench.taskspec.config import LabelSpec, TaskConfig
from xbench.taskspec.registry import get_task

WORDS = {"low": 300.0, "mid": 700.0, "high": 1500.0, "up": 2500.0, "down": 3800.0}
SR = 16000


def _sentences(rng, n):
    names = list(WORDS)
    return [" ".join(names[i] for i in rng.integers(0, len(names), rng.integers(1, 4))) for _ in range(n)]


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory):
    """A Qwen2-architecture decoder (2 layers, width 64) with a byte-level BPE tokenizer, saved to a folder.

    The LM is first trained briefly on random word sequences (``<|vision_end|>`` … ``<|endoftext|>``),
    standing in for a pretrained decoder, then frozen by the probe.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = tmp_path_factory.mktemp("tiny-qwen")
    corpus = _sentences(np.random.default_rng(0), 400)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=296, special_tokens=["<|endoftext|>", ap.SEPARATOR], show_progress=False)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[ap.SEPARATOR],
    )
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        initializer_range=0.3,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        texts = [f"{ap.SEPARATOR}{c}<|endoftext|>" for c in corpus]
        for step in range(150):
            enc = tok(texts[(step * 16) % 400 :][:16], padding=True, return_tensors="pt")
            loss = model(**enc, labels=enc.input_ids.masked_fill(enc.attention_mask == 0, -100)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def decoder(decoder_dir):
    return ap.load_decoder(str(decoder_dir))


def _features(seed, n):
    """Utterances of 1-3 'words', each a run of 6-9 frames near the word's prototype; transcripts name them."""
    rng = np.random.default_rng(seed)
    protos = torch.randn(len(WORDS), 16, generator=torch.Generator().manual_seed(0))
    names = list(WORDS)
    frames, texts = [], []
    for sentence in _sentences(rng, n):
        ids = [names.index(w) for w in sentence.split()]
        x = torch.cat([protos[i].repeat(int(rng.integers(6, 10)), 1) for i in ids])
        frames.append(x + 0.3 * torch.from_numpy(rng.standard_normal(x.shape)).float())
        texts.append(sentence)
    return ap.AsrData(frames, texts)


def test_missing_decoder_names_it_and_the_remedy(tmp_path, monkeypatch):
    missing = str(tmp_path / "no-such-decoder")
    with pytest.raises(ap.DecoderUnavailable, match=r"(?s)no-such-decoder.*XBENCH_ASR_DECODER=DIR.*asr_decoder"):
        ap.load_decoder(missing)
    assert ap.resolve_decoder() == ap.DEFAULT_DECODER == "Qwen/Qwen2.5-0.5B"
    monkeypatch.setenv(ap.DECODER_ENV, missing)
    assert ap.resolve_decoder() == missing and ap.resolve_decoder("other") == "other"


def test_sequence_layout_and_adapter_shape(decoder):
    model, tok, _ = decoder
    probe = ap.AsrProbe(model, tok, 16, ap.AsrConfig())
    assert probe.adapter.fc_1.out_features == model.config.intermediate_size == 128
    assert probe.adapter.proj.out_features == model.config.hidden_size
    assert not any(p.requires_grad for p in model.parameters())
    assert [n for n, _ in probe.named_parameters()] == [
        f"adapter.{m}.{p}" for m in ("fc_1", "fc_2", "proj") for p in ("weight", "bias")
    ]
    frames = [torch.randn(5, 16), torch.randn(3, 16)]
    embeds, mask, labels, audio = probe._sequences(frames, ["low mid", "up"])
    sep, eos = tok.convert_tokens_to_ids(ap.SEPARATOR), tok.eos_token_id
    ids0 = [sep, *tok("low mid", add_special_tokens=False)["input_ids"], eos]
    ids1 = [sep, *tok("up", add_special_tokens=False)["input_ids"], eos]
    assert audio == [5, 3] and mask.sum(1).tolist() == [5 + len(ids0), 3 + len(ids1)]
    assert labels[0].tolist() == [-100] * 5 + ids0 + [-100] * (labels.shape[1] - 5 - len(ids0))
    assert labels[1, 3 : 3 + len(ids1)].tolist() == ids1 and (labels[1, :3] == -100).all()
    text_embeds = model.get_input_embeddings()(torch.tensor(ids1))
    assert torch.allclose(embeds[1, 3 : 3 + len(ids1)], text_embeds)
    assert torch.allclose(embeds[0, :5], probe.adapter(frames[0]), atol=1e-6)


def test_utterance_errors_sum_to_corpus_wer():
    refs = ["the cat sat", "a b c d", "Hello", "x y"]
    hyps = ["the cat sat down", "a c d", "hello", ""]
    errors, words = ap.utterance_errors(refs, hyps)
    assert errors.tolist() == [1, 1, 0, 2] and words.tolist() == [3, 4, 1, 2]
    assert errors.sum() / words.sum() == pytest.approx(word_error_rate(refs, hyps))
    assert ap.inverse_wer(refs, hyps) == pytest.approx(1 - 4 / 10)
    assert ap.inverse_wer(["a"], ["b c d"]) == 0.0


def test_training_lowers_wer_and_is_deterministic(decoder):
    model, tok, _ = decoder
    train, valid, test = _features(0, 120), _features(1, 20), _features(2, 30)
    cfg = ap.AsrConfig(epochs=12, learning_rate=3e-3, batch_size=4, max_new_tokens=8, valid_max_utterances=16)
    untrained = ap.train_asr_probe(train, valid, model, tok, ap.AsrConfig(epochs=0, max_new_tokens=8))
    before = word_error_rate(test.texts, ap.transcribe(untrained.model, test, 8, 8, 1.0))
    result = ap.train_asr_probe(train, valid, model, tok, cfg)
    hyps = ap.transcribe(result.model, test, 8, 8, 1.0)
    after = word_error_rate(test.texts, hyps)
    assert before > 0.85 and after < 0.7, (before, after, hyps[:5])  # 0.90 -> 0.57 when written
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_valid == max(h["valid"] for h in result.history)
    # one utterance decodes the same alone as in a left-padded batch
    assert [ap.transcribe(result.model, test.head(1), 1, 8, 1.0)[0]] == hyps[:1]
    again = ap.train_asr_probe(train, valid, model, tok, cfg)
    assert again.history == result.history
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key
    # X-ARES's teacher-forced validation proxy runs and selects on its own numbers
    proxy = ap.train_asr_probe(train, valid, model, tok, ap.AsrConfig(epochs=2, validation="teacher_forced"))
    assert all(0.0 <= h["valid"] <= 1.0 for h in proxy.history)
    with pytest.raises(ValueError, match="validation"):
        ap.AsrConfig(validation="beam")


def _utterance(rng, sentence):
    parts = []
    for word in sentence.split():
        t = np.arange(int(rng.uniform(0.2, 0.3) * SR)) / SR
        parts.append(0.3 * np.sin(2 * np.pi * WORDS[word] * rng.uniform(0.95, 1.05) * t))
        parts.append(np.zeros(int(0.05 * SR)))
    x = np.concatenate(parts)
    return (x + 0.02 * rng.standard_normal(x.size)).astype(np.float32)


def _items(seed, n, prefix):
    rng = np.random.default_rng(seed)
    for i, sentence in enumerate(_sentences(rng, n)):
        meta = {"speaker": "0", "gender": "M", "trans": sentence}
        yield f"{prefix}{i:03d}", (_utterance(rng, sentence), SR), meta


def test_evaluate_asr_task_end_to_end(tmp_path, decoder_dir):
    data = tmp_path / "data"
    write_audio_shards(data, "toyasr_train-%06d.tar", _items(0, 100, "tr"), maxcount=50)
    write_audio_shards(data, "toyasr_dev-%06d.tar", _items(1, 16, "va"), maxcount=100)
    write_audio_shards(data, "toyasr_test-%06d.tar", _items(2, 24, "te"), maxcount=100)
    task = TaskConfig(
        name="toy_asr",
        domain="speech",
        task_type="asr",
        labels=LabelSpec("text", "trans"),
        train_split="toyasr_train",
        valid_split="toyasr_dev",
        test_split="toyasr_test",
        data_dir=str(data),
        metric="WER_inv",
        do_knn=False,
        epochs=8,
        learning_rate=3e-3,
        batch_size_train=4,
        batch_size_valid=8,
        eval_weight=24,
    )
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "toy_asr.json").write_text(json.dumps(task.to_dict()))
    task = get_task("toy_asr", tasks_dir)

    def opts(name, **kw):
        return RunOptions(
            cache_root=str(tmp_path / "cache"),
            output_dir=str(tmp_path / f"out-{name}"),
            bootstrap_rounds=200,
            show_progress=False,
            asr_decoder=str(decoder_dir),
            asr_max_new_tokens=8,
            asr_valid_utterances=16,
            **kw,
        )

    frame = evaluate(LogMelEncoder(), [task], opts("a"))
    row = frame.iloc[0]
    assert list(frame.track) == ["mlp"] and row.metric == "WER_inv" and row.test_count == 24
    (path,) = (tmp_path / "out-a").rglob("toy_asr@v1.json")
    probe = json.loads(path.read_text())["tracks"]["mlp"]["probe"]
    assert row.raw == row.score == pytest.approx(max(0.0, 1 - probe["wer"]))
    assert row.score > 0.25, probe["examples"]
    assert row.ci_low <= row.score <= row.ci_high and row.ci_high > row.ci_low
    assert probe["decoder"] == str(decoder_dir) and probe["validation"] == "greedy"
    assert probe["decoding"] == {"do_sample": False, "num_beams": 1, "max_new_tokens": 8, "repetition_penalty": 1.0}
    assert probe["adapter_hidden"] == 128 and probe["d_model"] == 64
    again = evaluate(LogMelEncoder(), [task], opts("b"))  # same cache, a fresh probe
    assert frame[["raw", "score", "ci_low", "ci_high"]].equals(again[["raw", "score", "ci_low", "ci_high"]])


@pytest.mark.slow
def test_evaluate_asr_task_xares_protocol(tmp_path, decoder_dir):
    """The xares protocol selects on the teacher-forced proxy and decodes with repetition_penalty 1.1."""
    data = tmp_path / "data"
    write_audio_shards(data, "toyasr_train-%06d.tar", _items(0, 100, "tr"), maxcount=100)
    write_audio_shards(data, "toyasr_dev-%06d.tar", _items(1, 16, "va"), maxcount=100)
    write_audio_shards(data, "toyasr_test-%06d.tar", _items(2, 24, "te"), maxcount=100)
    task = TaskConfig(
        name="toy_asr",
        domain="speech",
        task_type="asr",
        labels=LabelSpec("text", "trans"),
        train_split="toyasr_train",
        valid_split="toyasr_dev",
        test_split="toyasr_test",
        data_dir=str(data),
        metric="WER_inv",
        do_knn=False,
        epochs=8,
        learning_rate=3e-3,
        batch_size_train=4,
        eval_weight=24,
    )
    opts = RunOptions(
        cache_root=str(tmp_path / "cache"),
        output_dir=str(tmp_path / "out"),
        protocol="xares",
        bootstrap_rounds=100,
        show_progress=False,
        asr_decoder=str(decoder_dir),
        asr_max_new_tokens=8,
    )
    frame = evaluate(LogMelEncoder(), [task], opts)
    (path,) = (tmp_path / "out").rglob("toy_asr@v1.json")
    probe = json.loads(path.read_text())["tracks"]["mlp"]["probe"]
    assert probe["validation"] == "teacher_forced" and probe["valid_max_utterances"] is None
    assert probe["decoding"]["repetition_penalty"] == 1.1
    assert frame.score.iloc[0] > 0.1, probe["examples"]


def test_the_lm_head_sees_only_labelled_positions_and_the_loss_is_the_decoders(decoder):
    """The loss applies the LM head at the positions whose next token is labelled (never the audio frames) and
    equals the decoder's own ``labels=`` loss; teacher forcing reads the transcript's positions only."""
    model, tok, _ = decoder
    probe = ap.AsrProbe(model, tok, 16, ap.AsrConfig())
    data = _features(3, 3)
    rows = []
    head = model.get_output_embeddings()
    hook = head.register_forward_hook(lambda m, args, out: rows.append(out.reshape(-1, out.shape[-1]).shape[0]))
    try:
        loss = probe.loss(data.frames, data.texts)
    finally:
        hook.remove()
    embeds, mask, labels, audio = probe._sequences(data.frames, data.texts)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    reference = model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, labels=labels)
    assert rows == [int((labels[:, 1:] != -100).sum())] and rows[0] == int(mask.sum()) - sum(audio)  # text only
    assert torch.allclose(loss, reference.loss, atol=1e-5), (loss, reference.loss)
    full = reference.logits.argmax(-1)
    expected = []
    for i, (n_audio, text) in enumerate(zip(audio, data.texts, strict=True)):
        tokens = full[i, n_audio : int(mask[i].sum())].tolist()
        expected.append(tok.decode(tokens, skip_special_tokens=True)[: len(text)])
    assert probe.teacher_forced(data.frames, data.texts) == expected


def test_half_linear_weights_convert_once_and_compute_what_autocast_did(decoder_dir):
    model, tok, _ = ap.load_decoder(str(decoder_dir))
    embeds = torch.randn(2, 7, model.config.hidden_size)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        before = model(inputs_embeds=embeds).logits.float()
    table = model.get_input_embeddings().weight.detach().clone()
    ap.half_linear_weights(model, torch.bfloat16)
    ap.half_linear_weights(model, torch.bfloat16)  # idempotent
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    head = model.get_output_embeddings()
    assert head.weight is not model.get_input_embeddings().weight  # untied: the embeddings stay float32
    assert torch.equal(model.get_input_embeddings().weight, table) and table.dtype == torch.float32
    assert not any(p.requires_grad for p in model.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        after = model(inputs_embeds=embeds).logits.float()
    torch.testing.assert_close(after, before, rtol=0, atol=0)  # the very products autocast computed
