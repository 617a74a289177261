"""`xbench pretrain`: the data stream, the loop's schedule/accumulation/state, checkpoints, resume, torchrun."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from xbench.cli import main
from xbench.data.writer import write_audio_shards
from xbench.encoder.contract import load_encoder
from xbench.encoders.pretraining.recipe import RecipeError, builtin_recipes, load_recipe
from xbench.encoders.pretraining.stream import AudioStream, DataSpecError, parse_sources
from xbench.encoders.training import RowRandom, Trainer, TrainSettings, lr_factor, mix_seed, uniform

MICRO_DASHENG = {
    "family": "dasheng",
    "model": {"embed_dim": 32, "depth": 1, "num_heads": 2, "target_length": 100},
    "objective": {"decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 2},
    "train": {"lr": 0.002, "warmup_steps": 2, "schedule": "cosine", "min_lr_ratio": 0.1, "seed": 3},
    "data": {"batch_size": 4, "crop_seconds": 1.0, "shuffle_buffer": 8},
    "steps": 8,
    "checkpoint_every": 3,
    "log_every": 1,
}


def _clip(i: int, seconds: float, kind: str) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    rng = np.random.default_rng(i)
    if kind == "tone":
        return (0.4 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    return (0.2 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two sources: tones (0.6-1.4 s, 3 shards, 22.05 kHz to exercise resampling) and noise (1-2 s, 1 shard)."""
    root = tmp_path_factory.mktemp("pretrain_shards")
    tones = [(f"tone{i}", (_clip(i, 0.6 + 0.05 * i, "tone"), 16000), {"label": "tone"}) for i in range(18)]
    noise = [(f"noise{i}", (_clip(100 + i, 1.0 + 0.1 * i, "noise"), 16000), {"label": "noise"}) for i in range(10)]
    write_audio_shards(root / "tones", "train-%06d.tar", tones, maxcount=6)
    write_audio_shards(root / "noise", "train-%06d.tar", noise, maxcount=10)
    return root


def _data(root: Path) -> list[str]:
    return [f"tones={root}/tones/train-*.tar", f"noise:2={root}/noise/train-{{000000..000000}}.tar"]


def _recipe(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "micro.json"
    path.write_text(json.dumps({**MICRO_DASHENG, **changes}))
    return path


# --- the data stream ----------------------------------------------------------------------------------------


def test_sources_parse_names_weights_and_errors(shards):
    sources = parse_sources(_data(shards))
    assert [(s.name, len(s.shards), s.weight) for s in sources] == [("tones", 3, 1.0), ("noise", 1, 2.0)]
    plain = parse_sources([str(shards / "tones")], {"data": 0.5})
    assert [(s.name, len(s.shards), s.weight) for s in plain] == [("data", 3, 0.5)]
    with pytest.raises(DataSpecError, match=r"train-000003\.tar does not exist"):
        parse_sources([f"{shards}/tones/train-{{000000..000009}}.tar"])
    with pytest.raises(DataSpecError, match="no shard matches"):
        parse_sources([f"x={shards}/tones/valid-*.tar"])


def test_stream_is_seeded_mixed_by_weight_and_resumable(shards):
    sources = parse_sources(_data(shards))
    a, b = AudioStream(sources, 5, 1.0), AudioStream(sources, 5, 1.0)
    first = a.take(60)
    assert [i.sample.key for i in first] == [i.sample.key for i in b.take(60)]
    assert [i.seed for i in first] == [mix_seed(5, i) for i in range(60)]
    share = sum(i.source == "noise" for i in AudioStream(sources, 9, 1.0).take(600)) / 600
    assert abs(share - 2 / 3) < 0.06  # weights 1 (tones) : 2 (noise)
    assert sorted({i.sample.key for i in first if i.source == "tones"}) == sorted(f"tone{i}" for i in range(18))
    state = a.state_dict()
    later = [(i.sample.key, i.seed) for i in a.take(40)]
    c = AudioStream(sources, 5, 1.0)
    c.load_state_dict(json.loads(json.dumps(state)))
    assert [(i.sample.key, i.seed) for i in c.take(40)] == later
    assert [i.sample.key for i in AudioStream(sources, 6, 1.0).take(60)] != [i.sample.key for i in first]


def test_rank_batches_are_slices_of_the_global_batch(shards):
    sources = parse_sources(_data(shards))
    whole = next(AudioStream(sources, 1, 1.0).batches(4))
    halves = [next(AudioStream(sources, 1, 1.0).batches(2, rank, 2)) for rank in (0, 1)]
    assert torch.equal(torch.cat([h.waves for h in halves]), whole.waves)
    assert torch.equal(torch.cat([h.seeds for h in halves]), whole.seeds)
    assert whole.waves.shape == (4, 16000) and bool((whole.lengths <= 16000).all())
    short = whole.lengths < 16000
    assert all(float(w[n:].abs().sum()) == 0 for w, n in zip(whole.waves[short], whole.lengths[short], strict=True))


def test_row_randomness_depends_on_the_row_only():
    together = uniform((3, 5), RowRandom([7, 8, 9]))
    assert torch.equal(together[1:], uniform((2, 5), RowRandom([8, 9])))
    assert not torch.equal(together, uniform((3, 5), RowRandom([7, 8, 9]).child(1)))


# --- recipes ------------------------------------------------------------------------------------------------


def test_builtin_recipes_resolve_and_config_overrides_are_checked(tmp_path):
    stages = {name: [s.name for s in load_recipe(name).stages()] for name in builtin_recipes()}
    assert stages == {
        "beats-tiny": ["iter1", "iter2-tokenizer", "iter2"],
        "captionstew-m": ["alp"],
        "captionstew-tiny": ["alp"],
        "dasheng-base": ["mae"],
        "dasheng-tiny": ["mae"],
        "openbeats-base": ["iter1", "iter2-tokenizer", "iter2", "iter3-tokenizer", "iter3"],
    }
    override = tmp_path / "override.yaml"
    override.write_text("train:\n  lr: 0.01\ndata:\n  batch_size: 2\n")
    recipe = load_recipe("dasheng-tiny", override, {"steps": 7})
    assert (recipe.train.lr, recipe.train.warmup_steps, recipe.data.batch_size, recipe.steps) == (0.01, 200, 2, 7)
    override.write_text("train:\n  learning_rate: 0.01\n")
    with pytest.raises(RecipeError, match="unknown field 'learning_rate'"):
        load_recipe("dasheng-tiny", override)
    with pytest.raises(RecipeError, match="unknown section 'modle'"):
        load_recipe("dasheng-tiny", None, {"modle": {}})
    with pytest.raises(RecipeError, match="unknown recipe 'dasheng-huge'"):
        load_recipe("dasheng-huge")
    with pytest.raises(RecipeError, match="position table"):
        load_recipe("dasheng-tiny", None, {"data": {"crop_seconds": 1.5}}).stages()


# --- the loop -----------------------------------------------------------------------------------------------


def test_warmup_then_cosine_to_the_floor():
    s = TrainSettings(warmup_steps=4, schedule="cosine", min_lr_ratio=0.1)
    assert [lr_factor(i, 20, s) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 20, s) == 1.0 and lr_factor(19, 20, s) == pytest.approx(0.1)
    assert lr_factor(11, 20, s) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 7 / 15)))
    linear = TrainSettings(schedule="linear")
    assert lr_factor(0, 11, linear) == 1.0 and lr_factor(5, 11, linear) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="schedule"):
        TrainSettings(schedule="step")


class Noisy(nn.Module):
    """A regression whose input noise comes from per-row generators and whose dropout uses the global RNG."""

    def __init__(self, dropout: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(dropout), nn.Linear(16, 1))

    def forward(self, batch):
        x, seeds = batch
        x = x + 0.1 * uniform(x.shape, RowRandom(seeds))
        return (self.net(x).squeeze(-1) - x.sum(-1)).pow(2).mean()


def _rows(n: int, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(start)), torch.arange(start, start + n)


def _batches(size: int):
    i = 0
    while True:
        x, seeds = _rows(8, i)
        for k in range(0, 8, size):
            yield x[k : k + size], seeds[k : k + size]
        i += 8


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_accumulation_equals_the_double_batch():
    runs = {}
    for size, accumulation in ((8, 1), (4, 2), (2, 4)):
        model = Noisy(0.0)
        trainer = Trainer(model, lambda m, b, g: m(b), TrainSettings(lr=0.01, accumulation=accumulation), 5)
        trainer.run(_batches(size), 5)
        runs[size] = _params(model)
    assert torch.allclose(runs[8], runs[4], atol=1e-6) and torch.allclose(runs[8], runs[2], atol=1e-6)


def test_trainer_state_resumes_bitwise_including_dropout_and_schedule():
    settings = TrainSettings(lr=0.01, warmup_steps=2, schedule="cosine", seed=4)
    straight = Noisy(0.3)
    Trainer(straight, lambda m, b, g: m(b), settings, 8).run(_batches(4), 8)
    first = Noisy(0.3)
    trainer = Trainer(first, lambda m, b, g: m(b), settings, 8)
    batches = _batches(4)
    trainer.run(batches, 3)
    state = trainer.state_dict()
    torch.manual_seed(999)  # the caller's RNG must not matter
    second = Noisy(0.3)
    resumed = Trainer(second, lambda m, b, g: m(b), settings, 8)
    resumed.load_state_dict(state)
    resumed.run(batches, 5)
    assert torch.equal(_params(second), _params(straight))


# --- the command --------------------------------------------------------------------------------------------


def _pretrain(tmp_path, shards, out, *extra, recipe=None):
    recipe = recipe or _recipe(tmp_path)
    return main(["pretrain", str(recipe), "--data", *_data(shards), "--out", str(out), *extra])


def test_pretrain_writes_checkpoints_logs_and_an_encoder_file_that_loads(tmp_path, shards, capsys):
    out = tmp_path / "run"
    assert _pretrain(tmp_path, shards, out) == 0
    assert capsys.readouterr().out.strip() == str(out / "encoder.py")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000006", "step-000008"]  # keep 2
    assert json.loads((out / "latest.json").read_text()) == {"step": 8, "checkpoint": "checkpoints/step-000008"}
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,seconds" and [r.split(",")[0] for r in rows[1:]] == [str(i) for i in range(1, 9)]
    assert [float(r.split(",")[2]) for r in rows[1:3]] == [0.001, 0.002]  # warm-up
    assert (out / "loss.png").stat().st_size > 1000 and (out / "final" / "DONE").is_file()
    trained, untrained = load_encoder(out / "encoder.py"), load_encoder(out / "encoder_init.py")
    assert type(trained).__name__ == "PretrainedDashengEncoder" and trained.output_dim == 32
    x = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert trained(x).shape == (2, 25, 32) and not torch.equal(trained(x), untrained(x))
    assert _pretrain(tmp_path, shards, out) == 2
    assert "already holds a pretraining run; pass --resume" in capsys.readouterr().err


def test_bf16_autocast_runs_on_cpu(tmp_path, shards):
    assert _pretrain(tmp_path, shards, tmp_path / "bf16", "--precision", "bf16", "--steps", "3") == 0
    assert _pretrain(tmp_path, shards, tmp_path / "fp32", "--steps", "3") == 0
    bf16, fp32 = _losses(tmp_path / "bf16"), _losses(tmp_path / "fp32")
    assert all(math.isfinite(x) for x in bf16) and bf16 != fp32 and np.allclose(bf16, fp32, atol=0.05)


def _state_tensors(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)["trainer"]
    flat = {f"model.{k}": v for k, v in state["model"].items()}
    for index, slots in state["optimizer"]["state"].items():
        flat.update({f"adam.{index}.{k}": v for k, v in slots.items()})
    return flat


def test_a_killed_run_resumes_to_the_same_weights_bitwise(tmp_path, shards):
    steps = 60
    recipe = _recipe(tmp_path, steps=steps, checkpoint_every=4)
    reference = tmp_path / "straight"
    assert _pretrain(tmp_path, shards, reference, recipe=recipe) == 0
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "xbench", "pretrain", str(recipe), "--data", *_data(shards), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "latest.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "final").exists(), "the run finished before it could be killed"
    assert main(["pretrain", str(recipe), "--data", *_data(shards), "--out", str(out), "--resume"]) == 0
    name = f"checkpoints/step-{steps:06d}/state.pt"
    a, b = _state_tensors(reference / name), _state_tensors(out / name)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "log.csv").read_text().count("\n") == steps + 1


def _error_lines(capsys) -> list[str]:
    """The stderr lines after the progress banner (the banner names recipe and sources)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("micro: 1 stage(s) mae")
    return lines[1:]


def test_resume_refuses_corrupt_and_mismatched_checkpoints_in_one_line(tmp_path, shards, capsys):
    out = tmp_path / "run"
    assert _pretrain(tmp_path, shards, out, "--steps", "4") == 0
    capsys.readouterr()
    other = _recipe(tmp_path, train={**MICRO_DASHENG["train"], "lr": 0.003})
    state = out / "checkpoints" / "step-000003" / "state.pt"
    assert _pretrain(tmp_path, shards, tmp_path / "b", "--steps", "4", "--resume", str(state), recipe=other) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and err[0].startswith(f"error: checkpoint {state} was written by another configuration")
    assert "train.lr (0.002 there, 0.003 here)" in err[0]
    assert _pretrain(tmp_path, shards, tmp_path / "c", "--steps", "5", "--resume", str(state.parent)) == 2
    assert "steps (4 there, 5 here)" in capsys.readouterr().err
    state.write_bytes(state.read_bytes()[:5000])
    assert _pretrain(tmp_path, shards, tmp_path / "d", "--steps", "4", "--resume", str(state)) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and err[0].startswith(f"error: checkpoint {state} is corrupt or not a checkpoint")
    (out / "latest.json").write_text(json.dumps({"step": 3, "checkpoint": "checkpoints/step-000003"}))
    (out / "final" / "DONE").unlink()
    assert _pretrain(tmp_path, shards, out, "--steps", "4", "--resume") == 2
    assert f"checkpoint {state} is corrupt" in capsys.readouterr().err
    assert _pretrain(tmp_path, shards, tmp_path / "e", "--resume", str(tmp_path / "nothing")) == 2
    assert f"checkpoint {tmp_path / 'nothing'} does not exist" in capsys.readouterr().err


def _losses(folder: Path) -> list[float]:
    return [float(line.split(",")[1]) for line in (folder / "log.csv").read_text().splitlines()[1:]]


def test_torchrun_two_processes_give_the_losses_of_one_with_twice_the_batch(tmp_path, shards):
    recipe = _recipe(tmp_path, steps=20, checkpoint_every=20, data={**MICRO_DASHENG["data"], "batch_size": 2})
    two = tmp_path / "two"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "xbench", "pretrain", str(recipe), "--data", *_data(shards), "--out", str(two)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    one = tmp_path / "one"
    assert _pretrain(tmp_path, shards, one, "--batch-size", "4", recipe=recipe) == 0
    assert len(_losses(two)) == 20
    assert np.allclose(_losses(two), _losses(one), rtol=0, atol=1e-4), (_losses(two), _losses(one))
    assert torch.load(two / "checkpoints/step-000020/state.pt", weights_only=True)["world_size"] == 2
