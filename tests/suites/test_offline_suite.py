"""The offline suite: a --small build (readable, valid, byte-identical on rebuild, sane labels), the
offline zoo wrappers, the demo's leaderboard and chart, and (slow) known answers on the full build."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xbench.core.atomic_io import sha256_file
from xbench.data.shards import iter_clips
from xbench.suites.offline import SuiteError, build_suite, find_suite_tasks_dir, suite_tasks
from xbench.suites.offline.builder import TASK_POOLS, pypi_sources, read_manifest, task_pool
from xbench.suites.offline.sources import detect_sources
from xbench.suites.offline.texts import KEYWORDS, LANGUAGES
from xbench.taskspec.registry import load_tasks

from conftest import require_optional

SOURCES = detect_sources()
needs_espeak = pytest.mark.skipif(not SOURCES.espeak, reason="espeakng-loader is not installed")


def _build(folder: Path, small: bool) -> Path:
    if not (SOURCES.espeak or SOURCES.soundfonts):
        pytest.skip("no offline-suite source is installed (see scripts/setup.sh and scripts/setup_system.sh)")
    return build_suite(folder, small=small, partial=True, jobs=1, sources=SOURCES, log=lambda _: None)


@pytest.fixture(scope="module")
def small_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("offline-small"), small=True)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_small_rebuild_is_byte_identical(small_suite: Path, tmp_path: Path) -> None:
    again = _build(tmp_path / "again", small=True)
    first, second = _files(small_suite.parent), _files(again.parent)
    assert sorted(first) == sorted(second)
    assert len([n for n in first if n.endswith(".tar")]) >= 3
    changed = [name for name in first if first[name] != second[name]]
    assert not changed, f"files differ between two builds: {changed[:5]}"


def test_declarations_load_validate_and_pin_their_shards(small_suite: Path) -> None:
    manifest = read_manifest(small_suite)
    assert manifest is not None and manifest["suite"] == "offline" and manifest["size"] == "small"
    tasks = suite_tasks("offline", small_suite)
    assert {t.name for t in tasks} == set(manifest["tasks"])
    assert set(manifest["variants"].values()) <= {"full", "pypi"}
    for task in tasks:
        folder = Path(task.data_dir)
        assert folder.is_dir() and folder.name == task_pool(task.name)
        assert task.name.startswith("offline_") and task.labels.resolved
        assert sorted(task.checksums) == sorted(p.name for p in folder.glob("*.tar"))
        for name, digest in task.checksums.items():
            assert digest == f"sha256:{sha256_file(folder / name)}"
    registry = load_tasks(small_suite)  # beside the built-in X-ARES tasks: no name clash
    assert {t.name for t in tasks} <= set(registry)


def _clips(task, split: str) -> list:
    folder = Path(task.data_dir)
    shards = sorted(str(p) for p in folder.glob(task.audio_tar_name_of_split[split]))
    return list(iter_clips(shards, 16000, None))


def test_shards_read_and_labels_are_sane(small_suite: Path) -> None:
    tasks = {t.name: t for t in suite_tasks("offline", small_suite)}
    seen: dict[str, dict[str, list]] = {}
    for task in tasks.values():
        per_split = {}
        for split in ("train", "valid", "test"):
            clips = _clips(task, split)
            assert clips, (task.name, split)
            lengths = {c.num_samples for c in clips}
            assert len(lengths) == 1 and lengths.pop() >= 16000  # fixed-length clips per pool
            for clip in clips[:50]:
                assert clip.waveform.abs().max() <= 1.0 and torch.isfinite(clip.waveform).all()
                if task.task_type == "frame":
                    target = task.frame_targets(clip.meta, 10.0, clip.num_samples // 160 + 1)
                    assert target.shape[0] == task.output_dim and target.max() == 1.0
                else:
                    task.encode_label(clip.meta)  # raises on an unknown label
            per_split[split] = [c.meta for c in clips]
        seen[task.name] = per_split
    if "offline_keywords" in seen:
        kw = seen["offline_keywords"]
        assert {m["labels"] for m in kw["train"]} == set(KEYWORDS) == {m["labels"] for m in kw["test"]}
        engines = {"espeak", "flite", "festival"}
        assert {m["engine"] for m in kw["test"]} == {m["engine"] for m in kw["train"]} == engines
        assert not {m["voice"] for m in kw["test"]} & {m["voice"] for m in kw["train"] + kw["valid"]}
    if "offline_language" in seen:
        sp = seen["offline_language"]
        assert len({m["language"] for m in sp["test"]}) == len(LANGUAGES) >= 8
        assert {m["gender"] for m in sp["test"]} == {"female", "male"}
        assert not {m["voice"] for m in sp["test"]} & {m["voice"] for m in sp["train"] + sp["valid"]}
        assert {m["engine"] for m in sp["test"]} >= {"espeak", "festival"}
    if "offline_pitch" in seen:
        notes = seen["offline_pitch"]
        assert {m["soundfont"] for m in notes["test"]} == {"musescore"}
        assert {m["soundfont"] for m in notes["train"]} == {"fluidr3", "timgm6mb"}
        assert len({m["instrument_family_str"] for m in notes["test"]}) == 11
    if "offline_instrument_mix" in seen:
        for meta in seen["offline_instrument_mix"]["test"]:
            assert 2 <= len(meta["instrument_families"].split(";")) <= 3


def test_suite_folder_convention(small_suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_suite_tasks_dir("offline", small_suite) == small_suite.resolve()
    assert find_suite_tasks_dir("offline", small_suite.parent) == small_suite.resolve()  # the suite folder
    monkeypatch.setenv("XBENCH_DATA", str(tmp_path))
    with pytest.raises(SuiteError, match="xbench suite build offline"):
        find_suite_tasks_dir("offline")
    target = tmp_path / "suites" / "offline"
    target.mkdir(parents=True)
    (target / "tasks").symlink_to(small_suite)
    assert [t.name for t in suite_tasks("offline")] == [t.name for t in suite_tasks("offline", small_suite)]


def test_pypi_only_variant(tmp_path: Path) -> None:
    """What a user without root can build: espeak-ng (espeakng-loader) and TimGM6mb (pretty-midi) alone."""
    pypi = pypi_sources(SOURCES)
    if not (pypi.espeak and "timgm6mb" in pypi.soundfonts):
        pytest.skip("espeakng-loader, pretty-midi or tinysoundfont is not installed")
    with pytest.raises(SuiteError, match="--partial"):
        build_suite(tmp_path, small=True, sources=pypi, log=lambda _: None)
    tasks_dir = build_suite(tmp_path, small=True, partial=True, sources=pypi, log=lambda _: None)
    tasks = {t.name: t for t in suite_tasks("offline", tasks_dir)}
    assert sorted(tasks) == sorted(f"{name}_pypi" for name in TASK_POOLS)
    assert set(read_manifest(tasks_dir)["variants"].values()) == {"pypi"}
    kw = tasks["offline_keywords_pypi"]
    assert {c.meta["engine"] for c in _clips(kw, "train") + _clips(kw, "test")} == {"espeak"}
    notes = tasks["offline_pitch_pypi"]
    train_programs = {c.meta["program"] for c in _clips(notes, "train")}
    test_programs = {c.meta["program"] for c in _clips(notes, "test")}
    assert len(train_programs) == len(test_programs) == 11 and not train_programs & test_programs


def test_missing_sources_are_named(tmp_path: Path) -> None:
    from xbench.suites.offline.sources import Sources

    bare = Sources(espeak=False, flite=(), festival=(), soundfonts={})
    with pytest.raises(SuiteError, match="flite.*--partial"):
        build_suite(tmp_path, sources=bare, log=lambda _: None)


@needs_espeak
def test_espeak_is_deterministic_despite_library_state() -> None:
    from xbench.suites.offline.tts import Espeak

    espeak = Espeak()
    first = espeak.say("en-us+f3", "left seven", seed=5)
    espeak.say("fr+m2", "bonjour", seed=1)
    assert np.array_equal(first, espeak.say("en-us+f3", "left seven", seed=5))
    with pytest.raises(RuntimeError, match="unknown voice"):
        espeak.say("no-such-voice", "x")


# -- offline zoo wrappers -----------------------------------------------------------------------------------


def test_openwakeword_frames_match_the_official_embedding() -> None:
    require_optional("openwakeword")
    from xbench.encoders.offline.openwakeword_encoder import OpenWakeWordEncoder

    enc = OpenWakeWordEncoder()
    for width, frames in ((1, 1), (1280, 1), (1281, 2), (8000, 7), (16000, 13)):
        assert enc(torch.zeros(1, width)).shape == (1, frames, 96)
    pcm = (np.random.default_rng(0).standard_normal((1, 32000)) * 3000).astype(np.int16)
    official = enc.features.embed_clips(pcm, batch_size=1)[0]
    ours = enc(torch.from_numpy(pcm.astype(np.float32) / 32767.0))[0].numpy()
    np.testing.assert_allclose(ours[9 : 9 + len(official)], official, atol=1e-4)


def test_resemblyzer_frames_end_in_the_official_utterance_embedding() -> None:
    require_optional("resemblyzer")
    from xbench.encoders.offline.resemblyzer_encoder import ResemblyzerEncoder

    enc = ResemblyzerEncoder()
    wave = torch.from_numpy(np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1)
    frames = enc(wave[None])
    assert frames.shape == (1, 101, 256)
    model = enc.model
    last = torch.relu(model.linear(frames[:, -1]))
    with torch.no_grad():
        official = model(enc._mels(wave[None]))
    torch.testing.assert_close(last / last.norm(dim=1, keepdim=True), official)


def test_crepe_tiny_frames_and_pitch_sensitivity() -> None:
    require_optional("torchcrepe")
    from xbench.encoders.offline.crepe_encoder import CrepeTinyEncoder

    enc = CrepeTinyEncoder().eval()
    t = torch.arange(16000) / 16000
    tones = torch.stack([a * torch.sin(2 * torch.pi * f * t) for a, f in ((1.0, 220.0), (0.05, 220.0), (1.0, 330.0))])
    with torch.no_grad():
        out = enc(tones)
    assert out.shape == (3, 26, 256)
    pooled = torch.nn.functional.normalize(out[:, 2:-2].mean(1), dim=1)
    sims = pooled @ pooled.T
    assert sims[0, 1] > 0.99 > sims[0, 2] + 0.05  # frames are level-normalised; pitch changes the embedding


# -- the demo ---------------------------------------------------------------------------------------------


def test_demo_on_the_small_suite(small_suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import xml.etree.ElementTree as ET

    import pandas as pd
    from PIL import Image

    from xbench.suites import demo as demo

    monkeypatch.setenv("XBENCH_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "results"
    rc = demo.main(["--encoders", "logmel", "--suite-dir", str(small_suite.parent), "--results", str(results),
                    "--small", "--bootstrap", "10"])  # fmt: skip
    assert rc == 0
    tasks = suite_tasks("offline", small_suite)
    knn_tasks = [t for t in tasks if t.do_knn and t.task_type == "clip"]
    # the leaderboard's files: X-ARES's README layout (tasks, then the public and all averages per track)
    board = pd.read_csv(results / "leaderboard.csv")
    assert list(board.columns) == ["track", "task", "formal_name", "private", "logmel"]
    averages = board.task.str.startswith("average_")
    assert len(board[~averages]) == len(tasks) + len(knn_tasks)
    assert set(board[board.task == "average_all"].track) == {"mlp", "knn"}
    long = pd.read_csv(results / "leaderboard-long.csv")
    assert set(long.encoder) == {"logmel"} and len(long) == len(tasks) + len(knn_tasks)
    assert long.score.between(0, 1).all() and (long.ci_low <= long.ci_high).all()
    assert (results / "leaderboard.md").read_text().startswith("MLP track:")
    # the chart: a PNG that decodes, and an SVG naming every task
    with Image.open(results / "leaderboard.png") as png:
        assert png.format == "PNG" and min(png.size) > 100
    texts = [t.text or "" for t in ET.parse(results / "leaderboard.svg").iter("{http://www.w3.org/2000/svg}text")]
    assert {t.formal_name or t.name for t in tasks} <= set(texts)
    assert "Weighted average (all)" in texts
    assert demo.main(["--encoders", "logmel,logmel"]) == 2  # refused before anything runs


# -- known answers on the full build (slow) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def full_suite(tmp_path_factory: pytest.TempPathFactory) -> dict:
    missing = [s for s in ("espeak", "flite", "festival", "timgm6mb", "fluidr3", "musescore") if not SOURCES.has(s)]
    if missing:
        pytest.skip(f"the full offline suite needs {missing} (scripts/setup_system.sh)")
    tasks_dir = build_suite(tmp_path_factory.mktemp("offline-full"), jobs=2, sources=SOURCES, log=lambda _: None)
    return {t.name: t for t in suite_tasks("offline", tasks_dir)}


def _knn(encoder: str, tasks: list, tmp: Path) -> dict[str, float]:
    from xbench.pipeline.run import RunOptions, evaluate

    opts = RunOptions(tracks=("knn",), cache_root=str(tmp / "cache"), bootstrap_rounds=10, show_progress=False)
    frame = evaluate(encoder, tasks, opts)
    return {r.task: r.raw for r in frame.itertuples()}


@pytest.mark.slow
def test_known_answers(full_suite: dict, tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("known-answers")
    clip = [t for t in full_suite.values() if t.task_type == "clip" and t.do_knn]
    base = _knn("logmel", clip, tmp)
    assert max(base.values()) < 0.93, base  # the held-out splits keep the baseline well below 1.0
    crepe = _knn("crepe-tiny", [full_suite["offline_pitch"]], tmp)
    assert crepe["offline_pitch"] >= 0.9, crepe
    assert crepe["offline_pitch"] > base["offline_pitch"] + 0.05
    speaker = _knn("resemblyzer", [full_suite["offline_gender"], full_suite["offline_keywords"]], tmp)
    assert speaker["offline_gender"] > base["offline_gender"] and speaker["offline_keywords"] > base["offline_keywords"]
    wake = _knn("openwakeword", [full_suite["offline_keywords"]], tmp)
    assert wake["offline_keywords"] > base["offline_keywords"] + 0.1, (wake, base)
    print(json.dumps({"logmel": base, "crepe-tiny": crepe, "resemblyzer": speaker, "openwakeword": wake}))


def test_hash_helper_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"xbench" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"xbench" * 1000).hexdigest()


@pytest.mark.slow
def test_cli_run_on_the_suite_twice_gives_identical_scores(small_suite: Path, tmp_path: Path) -> None:
    """Tasks the harness has never seen (real TTS/SoundFont recordings): two independent runs agree."""
    import subprocess
    import sys

    def run(tag: str) -> str:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "xbench",
                "run",
                "--encoder",
                "logmel",
                "--suite",
                "offline",
                "--tasks-dir",
                str(small_suite),
                "--output",
                str(tmp_path / f"out-{tag}"),
                "--cache-dir",
                str(tmp_path / f"cache-{tag}"),
                "--bootstrap",
                "100",
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        (summary,) = (tmp_path / f"out-{tag}").rglob("summary.csv")
        return summary.read_text()

    assert run("a") == run("b")
