"""The default protocol's MLP track: the mean over probe seeds, its interval, its record, and `compare`."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from xbench.data.writer import write_audio_shards
from xbench.encoders.baselines import LogMelEncoder
from xbench.pipeline.run import RunOptions, evaluate, summary_table
from xbench.pipeline.scorers import probe_seeds_setting
from xbench.report.compare import compare_runs
from xbench.taskspec.config import LabelSpec, TaskConfig

SR = 16000
CLASSES = ("a", "b", "c", "d")


def _items(seed, n, prefix, noise):
    rng = np.random.default_rng(seed)
    for i in range(n):
        k = i % 4
        t = np.arange(SR // 2) / SR
        f = 400 * (1 + 0.25 * k) * rng.uniform(0.85, 1.15)
        x = 0.2 * np.sin(2 * np.pi * f * t) + noise * rng.standard_normal(t.size)
        yield f"{prefix}{i:03d}", (x.astype(np.float32), SR), {"label": CLASSES[k]}


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """Four noisy tones, 60/16/40 clips: probes of different seeds score differently."""
    root = tmp_path_factory.mktemp("seeds")
    splits = {"train": ("tr", 0, 60), "valid": ("va", 1, 16), "test": ("te", 2, 40)}
    for name, seed, n in splits.values():
        write_audio_shards(root / "data", f"{name}-%06d.tar", _items(seed, n, name, 0.5), maxcount=1000)
    task = TaskConfig(
        name="noisy_tones",
        domain="sound",
        labels=LabelSpec("class", "label", classes=CLASSES),
        output_dim=4,
        data_dir=str(root / "data"),
        eval_weight=40,
        epochs=10,
        learning_rate=1e-2,
        batch_size_encode=16,
        **{f"{role}_split": name for role, (name, _, _) in splits.items()},
    )
    return root, task


def _evaluate(root, task, out, **kw):
    opts = RunOptions(cache_root=str(root / "cache"), output_dir=str(root / out), show_progress=False, **kw)
    return evaluate(LogMelEncoder(), [task], opts)


def _result(root, out):
    (path,) = (root / out).rglob("noisy_tones@v1.json")
    return json.loads(path.read_text()), path


def test_default_mlp_is_the_mean_over_five_probe_seeds(noisy):
    root, task = noisy
    frame = _evaluate(root, task, "default", bootstrap_rounds=200)
    mlp = frame[frame.track == "mlp"].iloc[0]
    result, path = _result(root, "default")
    seeds = result["tracks"]["mlp"]["seeds"]
    assert seeds["probe_seeds"] == [42, 43, 44, 45, 46]
    assert mlp.raw == pytest.approx(np.mean(seeds["raw"])) and len(set(seeds["raw"])) > 1
    assert (mlp.probe_seeds, mlp.seed_min, mlp.seed_max) == (5, min(seeds["score"]), max(seeds["score"]))
    assert mlp.seed_std == pytest.approx(np.std(seeds["score"], ddof=1)) == pytest.approx(seeds["std"])
    assert mlp.ci_low <= mlp.score <= mlp.ci_high
    assert result["run_settings"]["probe_seeds"] == 5
    assert "knn" in set(frame.track) and "seeds" not in result["tracks"]["knn"]
    with np.load(path.with_name("noisy_tones@v1.predictions.npz")) as npz:
        assert npz["seeds_mlp"].tolist() == seeds["probe_seeds"] and npz["mlp_pred"].shape == (5, 40)
        assert npz["knn_pred"].shape == (40,) and "seeds_knn" not in npz.files
    assert "mlp seeds" in summary_table(frame) and f"({5})" in summary_table(frame)
    # the first head is the task seed's single probe (--probe-seeds 1); the others share its batches
    one = _evaluate(root, task, "one", bootstrap_rounds=200, probe_seeds=1)
    assert one[one.track == "mlp"].raw.iloc[0] == pytest.approx(seeds["raw"][0])
    assert "seeds" in _result(root, "one")[0]["tracks"]["mlp"]  # one seed: its score, no spread
    # another number of seeds is another result, not the saved one
    three = _evaluate(root, task, "default", bootstrap_rounds=200, probe_seeds=3)
    assert _result(root, "default")[0]["tracks"]["mlp"]["seeds"]["probe_seeds"] == [42, 43, 44]
    assert three[three.track == "mlp"].probe_seeds.iloc[0] == 3


def test_default_interval_covers_single_seed_scores(noisy):
    """20 probes trained alone (seeds outside the default five): the default 95 % interval holds at least 90 %."""
    root, task = noisy
    default = _evaluate(root, task, "cover", bootstrap_rounds=500, tracks=("mlp",)).iloc[0]
    singles = np.array(
        [
            _evaluate(root, task, f"cover{s}", bootstrap_rounds=1, tracks=("mlp",), probe_seeds=(s,)).score.iloc[0]
            for s in range(100, 120)
        ]
    )
    assert singles.std() > 0.02  # the seeds matter on this task
    inside = (singles >= default.ci_low) & (singles <= default.ci_high)
    assert inside.mean() >= 0.9, (default.ci_low, default.ci_high, sorted(singles))
    assert default.ci_low <= np.median(singles) <= default.ci_high


def test_same_encoder_other_probe_seeds_is_within_noise(noisy):
    root, task = noisy
    _evaluate(root, task, "seeds_a", bootstrap_rounds=300)
    _evaluate(root, task, "seeds_b", bootstrap_rounds=300, probe_seeds=(47, 48, 49, 50, 51))
    a, b = (root / name / "LogMelEncoder-f778170c764d4e1d" / "xbench" for name in ("seeds_a", "seeds_b"))
    diffs = {d.track: d for d in compare_runs(a, b, rounds=300).tasks}
    assert diffs["mlp"].score_a != diffs["mlp"].score_b  # the seeds changed the score ...
    assert diffs["mlp"].verdict == "within noise"  # ... within the seeds' noise
    assert diffs["knn"].diff == 0.0 and diffs["knn"].verdict == "within noise"


def test_probe_seed_options_are_checked():
    assert probe_seeds_setting(RunOptions()) == 5
    assert probe_seeds_setting(RunOptions(probe_seeds=(7, 9))) == [7, 9]
    assert probe_seeds_setting(RunOptions(protocol="xares")) == 1  # X-ARES trains one probe
    for bad in (0, -2, (1, 1), (), True):
        with pytest.raises(ValueError, match="probe seeds"):
            RunOptions(probe_seeds=bad)
    with pytest.raises(ValueError, match="probe seeds apply to protocol xbench"):
        RunOptions(protocol="xares", probe_seeds=3)
    opts = RunOptions(protocol="xares", probe_seeds=1)
    assert dataclasses.replace(opts, protocol="xbench").probe_seeds == 1


@pytest.mark.parametrize("extra", [["--probe-seeds", "0"], ["--probe-seeds", "3", "--protocol", "xares"]])
def test_cli_refuses_bad_probe_seeds(extra):
    proc = subprocess.run(
        [sys.executable, "-m", "xbench", "run", "--encoder", "logmel", "--tasks", "esc50", *extra],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "probe seeds" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("n_seeds", [1, 4])
def test_accuracy_interval_computed_at_once_equals_the_per_round_bootstrap(n_seeds):
    """The scorer's all-rounds accuracy interval against bootstrap_interval's round-by-round one (two folds)."""
    import torch

    from xbench.pipeline.scorers import _accuracy_interval
    from xbench.probes.linear import ProbeData
    from xbench.scoring.scores import bootstrap_interval, seed_resampled

    rng = np.random.default_rng(n_seeds)
    tests, correct = {}, {}
    for fold, n in (("1", 37), ("2", 50)):
        targets = rng.integers(0, 3, n)
        outputs = [rng.random((n, 3)) for _ in range(n_seeds)]
        tests[fold] = (outputs, ProbeData(torch.zeros(n, 2), torch.from_numpy(targets)))
        correct[fold] = [(o.argmax(-1) == targets).astype(float) for o in outputs]
    sizes = {fold: len(c[0]) for fold, c in correct.items()}

    full = {f: [c.mean() for c in per_seed] for f, per_seed in correct.items()}

    def per_round(draw, seeds=np.zeros(1, dtype=int)):
        rounds = [seed_resampled(lambda s, f=f, i=i: correct[f][s][i].mean(), full[f], seeds) for f, i in draw.items()]
        return float(np.mean(rounds))

    want = bootstrap_interval(per_round, sizes, 400, 7, n_seeds=n_seeds if n_seeds > 1 else None)
    assert _accuracy_interval(tests, 400, 7) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(
    ("n_seeds", "metric"), [(1, "segmentf1_macro"), (3, "segmentf1_macro"), (3, "segmentf1_micro")]
)
def test_segment_f1_interval_from_pooled_counts_equals_the_per_round_bootstrap(n_seeds, metric):
    """Frame tasks: the interval from each clip's segment counts, pooled once, against the generic round-by-round
    bootstrap that re-pools every drawn clip with sklearn's F1 (two folds, clips of different lengths)."""
    import torch

    from xbench.pipeline.scorers import _frame_metric, _interval, _segment_f1_interval
    from xbench.probes.linear import ProbeData

    task = TaskConfig(
        name="notes_f1",
        domain="music",
        task_type="frame",
        labels=LabelSpec("events", "label", classes=tuple("xyzw"), start_key="on", end_key="off", clip_seconds=2.0),
        output_dim=4,
        criterion="BCEWithLogitsLoss",
        metric=metric,
        metric_args={"segment_length_in_s": 0.2},
    )
    rng = np.random.default_rng(n_seeds)
    tests = {}
    for fold, n in (("1", 23), ("2", 31)):
        lengths = rng.integers(3, 40, n)
        targets = [torch.from_numpy((rng.random((t, 4)) < 0.2).astype(np.float32)) for t in lengths]
        outputs = [[rng.normal(-1.0, 1.5, (t, 4)) for t in lengths] for _ in range(n_seeds)]
        tests[fold] = (outputs, ProbeData([torch.zeros(t, 2) for t in lengths], targets))
    fn = _frame_metric(task, 40.0)
    full = {fold: [fn(o, data) for o in outputs] for fold, (outputs, data) in tests.items()}
    want = _interval(tests, fn, 300, task.seed, full)
    assert _segment_f1_interval(tests, task, 40.0, 300) == pytest.approx(want, abs=1e-12)
