"""The task registry: TaskConfig/LabelSpec, the 27 X-ARES 0.1.3 declarations, loading, ``ls``/``describe``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from xbench.cli import main
from xbench.data.shard_patterns import expand_braces
from xbench.taskspec.config import METRICS, NOT_SCORE_RELEVANT, LabelError, LabelSpec, TaskConfig, TaskConfigError
from xbench.taskspec.listing import data_status
from xbench.taskspec.registry import TaskNotFoundError, builtin_tasks_dir, get_task, load_task_file, load_tasks

from conftest import require_oracle

TASKS = load_tasks()

# X-ARES 0.1.3's task files (`src/tasks/*_task.py`), transcribed independently of the declarations:
# name: formal, domain, zenodo, splits (train, valid, test) or fold globs {fold: glob}, metric, #classes, kNN,
#       epochs, batch_size_train, crop_length, batch_size_encode, eval_weight, private, disabled
S = "splits"
PINNED = {
    "asvspoof2015": ("ASV2015", "speech", "14718430", ("asvspoof_train", "asvspoof_valid", "asvspoof_eval"),
                     "accuracy", 2, True, 5, 64, None, 16, 2000, False, False),
    "clotho": ("Clotho", "sound", "14856454", ("clotho_development", "clotho_evaluation", "clotho_validation"),
               "recallatk_r1", None, False, 20, 128, 30, 16, 1045, False, False),
    "cremad": ("CREMA-D", "speech", "14646870", ("wds-audio-train", "wds-audio-valid", "wds-audio-test"),
               "accuracy", 6, True, 10, 32, None, 16, 1116, False, False),
    "desed": ("DESED", "sound", "14808180", ("wds-audio-train", "wds-audio-eval", "wds-audio-eval"),
              "segmentf1_macro", 10, False, 10, 32, None, 16, 1153, False, False),
    "esc50": ("ESC-50", "sound", "14614287", {k: f"wds-audio-fold-{k}-*.tar" for k in range(1, 6)},
              "accuracy", 50, True, 10, 32, None, 16, 400, False, False),
    "fluentspeechcommands": ("Fluent Speech Commands", "speech", "14722453",
                             ("fluentspeechcommands_train", "fluentspeechcommands_valid", "fluentspeechcommands_test"),
                             "accuracy", 248, True, 10, 32, None, 1, 2000, False, False),
    "freemusicarchive": ("Free Music Archive Small", "music", "14725056",
                         ("fma_small_train", "fma_small_valid", "fma_small_test"),
                         "accuracy", 8, True, 3, 32, 10, 16, 800, False, False),
    "fsd50k": ("FSD50k", "sound", "14868441", ("fsd50k_train", "fsd50k_validation", "fsd50k_eval"),
               "mAP", 200, False, 10, 64, 10, 16, 2000, False, False),
    "fsdkaggle2018": ("FSD18-Kaggle", "sound", "14725117", ("fsd18_train", "fsd18_test", "fsd18_test"),
                      "accuracy", 41, False, 3, 64, None, 16, 1600, False, False),
    "gtzan_genre": ("GTZAN Genre", "music", "14722472", {k: f"gtzan_fold_{k}_0000000.tar" for k in range(10)},
                    "accuracy", 10, True, 10, 32, None, 16, 100, False, False),
    "libricount": ("LibriCount", "speech", "14722478", {k: f"libricount_fold{k:02d}.tar" for k in range(5)},
                   "accuracy", 11, True, 10, 64, None, 16, 1144, False, False),
    "librispeech": ("LibriSpeech-100h", "speech", "14716252", ("train-clean-100", "dev-clean", "test-clean"),
                    "WER_inv", None, False, 10, 4, None, 16, 10000, False, False),
    "librispeechmalefemale": ("LibriSpeech-MF", "speech", "14716252", ("train-clean-100", "dev-clean", "test-clean"),
                              "accuracy", 2, True, 10, 32, 5, 16, 2620, False, False),
    "maestro": ("MAESTRO", "music", "14858022", ("maestro_train", "maestro_valid", "maestro_test"),
                "segmentf1_micro", 87, False, 50, 1, None, 1, 65, False, False),
    "nsynthinstument": ("NSynth-Instruments", "music", "14725174", ("nsynth_train", "nsynth_valid", "nsynth_test"),
                        "accuracy", 11, True, 10, 32, None, 16, 2000, False, False),
    "ravdess": ("RAVDESS", "speech", "14722524", {k: f"ravdess_fold_{k}_0000000.tar" for k in range(4)},
                "accuracy", 8, True, 10, 32, None, 16, 360, False, False),
    "speechcommandsv1": ("Speech Commands V1", "speech", "14722647",
                         ("wds-audio-train", "wds-audio-valid", "wds-audio-test"),
                         "accuracy", 30, True, 10, 64, None, 16, 2000, False, False),
    "urbansound8k": ("UrbanSound 8k", "sound", "14722683",
                     {k: f"urbansound_fold{k}_0000000.tar" for k in range(1, 11)},
                     "accuracy", 10, True, 10, 32, None, 16, 873, False, False),
    "vocalimitations": ("Vocal Imitation", "sound", "14862060",
                        {k: f"vocal_imitations_fold{k:02}_0000000.tar" for k in range(3)},
                        "accuracy", 302, True, 20, 32, None, 1, 1867, False, False),
    "vocalsound": ("VocalSound", "speech", "14722710", ("train", "valid", "test"),
                   "accuracy", 6, True, 10, 32, None, 16, 2000, False, False),
    "voxceleb1": ("VoxCeleb1", "speech", "14811963", ("voxceleb1_train", "voxceleb1_valid", "voxceleb1_test"),
                  "accuracy", 1251, True, 10, 32, 6, 16, 2000, False, False),
    "voxlingua33": ("VoxLingua33", "speech", "14812245", ("train_subset", "dev", "dev"),
                    "accuracy", 33, True, 10, 64, 10, 16, 1609, False, False),
    "finger_snap": ("Finger snap sound", "sound", None, ("finger_snap_train", "finger_snap_test", "finger_snap_test"),
                    "accuracy", 2, True, 20, 32, None, 16, 5000, True, True),
    "inside_outside_car": ("Inside/outside car", "sound", None,
                           ("inside_outside_car_train", "inside_outside_car_test", "inside_outside_car_test"),
                           "accuracy", 2, True, 20, 32, None, 16, 5000, True, False),
    "key_scratching": ("Key scratching car", "sound", None,
                       ("key_scratching_train", "key_scratching_test", "key_scratching_test"),
                       "accuracy", 2, True, 20, 32, None, 16, 5000, True, True),
    "liveenv": ("liveenv", "sound", None, ("liveenv_train", "liveenv_test", "liveenv_test"),
                "accuracy", 28, False, 50, 32, None, 16, 5000, True, True),
    "subway_broadcast": ("Subway broadcast", "sound", None, ("subway_broadcast",) * 3,
                         "accuracy", 2, True, 20, 32, None, 16, 5000, True, False),
}  # fmt: skip
SHARD_GLOB = re.compile(r"^[A-Za-z0-9_.{}*-]+\.tar$")


# ICME 2025 challenge-table variants X-ARES 0.1.3 lists but never implemented: name -> (the X-ARES task whose
# record and shards it shares, metric, #classes, kNN, eval_weight); all disabled (outside X-ARES's weights)
VARIANTS = {
    "nsynth_pitch": ("nsynthinstument", "accuracy", 128, True, 2000),
    "asvspoof2015_eer": ("asvspoof2015", "EER", 2, False, 2000),
}
XARES = {name: t for name, t in TASKS.items() if name in PINNED}


def test_registry_holds_the_27_xares_tasks():
    assert set(TASKS) == set(PINNED) | set(VARIANTS)
    assert sum(not t.private for t in XARES.values()) == 22
    assert {t.name for t in XARES.values() if t.private} == {
        "finger_snap",
        "inside_outside_car",
        "key_scratching",
        "liveenv",
        "subway_broadcast",
    }


def test_public_eval_weight_sums():
    public = [t for t in XARES.values() if not t.private]
    assert sum(t.eval_weight for t in public) == 38752
    knn = [t for t in public if t.do_knn]
    assert len(knn) == 16 and sum(t.eval_weight for t in knn) == 22889


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_xares_fields(name):
    formal, domain, zenodo, splits, metric, ncls, knn, epochs, bs, crop, enc_bs, weight, private, disabled = PINNED[
        name
    ]
    t = TASKS[name]
    assert (t.formal_name, t.domain, t.zenodo_id, t.metric, t.output_dim, t.do_knn) == (
        formal,
        domain,
        zenodo,
        metric,
        ncls,
        knn,
    )
    assert (t.epochs, t.batch_size_train, t.batch_size_valid, t.crop_length, t.batch_size_encode) == (
        epochs,
        bs,
        bs,
        crop,
        enc_bs,
    )
    assert (t.eval_weight, t.private, t.disabled, t.learning_rate, t.seed) == (weight, private, disabled, 1e-3, 42)
    if isinstance(splits, dict):
        assert t.k_fold_splits == tuple(splits) and t.splits() == list(splits.items())
        assert (t.train_split, t.valid_split, t.test_split) == (None, None, None)
    else:
        assert t.k_fold_splits is None and (t.train_split, t.valid_split, t.test_split) == splits
        assert t.splits() == [
            (role, f"{split}*.tar") for role, split in zip(("train", "valid", "test"), splits, strict=True)
        ]


def test_special_cases():
    assert TASKS["clotho"].save_encoded_per_batches == 500
    assert all(t.save_encoded_per_batches == 2000 for n, t in TASKS.items() if n != "clotho")
    assert TASKS["clotho"].pretrained_dependencies == ("bert-base-uncased:tokenizer",)
    assert TASKS["librispeech"].pretrained_dependencies == ("qwen2",)
    assert TASKS["maestro"].criterion == "BCEWithLogitsLoss" and TASKS["maestro"].criterion_args == {"pos_weight": 10}
    assert {n for n, t in TASKS.items() if t.criterion == "BCEWithLogitsLoss"} == {"desed", "fsd50k", "maestro"}
    assert TASKS["clotho"].criterion == "AudioTextContrastiveLoss"
    assert TASKS["desed"].metric_args == {"segment_length_in_s": 1.0}
    assert TASKS["maestro"].metric_args == {"segment_length_in_s": 0.1}
    assert "BabySound " in TASKS["liveenv"].labels.classes
    assert TASKS["maestro"].labels.classes == tuple(range(21, 108))
    assert TASKS["librispeech"].zenodo_id == TASKS["librispeechmalefemale"].zenodo_id
    assert TASKS["vocalimitations"].encoded_tar_name_of_split[0] == "vocalimiations-wds-encoded-fold-0-*.tar"
    assert TASKS["desed"].audio_tar_name_of_split == {
        "wds-audio-train": "wds-audio-train*.tar",
        "wds-audio-eval": "wds-audio-eval*.tar",
    }
    assert TASKS["subway_broadcast"].audio_tar_name_of_split == {"subway_broadcast": "subway_broadcast*.tar"}
    val_is_test = {n for n, t in TASKS.items() if t.valid_is_test and not t.is_kfold}
    assert val_is_test == {
        "desed",
        "fsdkaggle2018",
        "voxlingua33",
        "finger_snap",
        "inside_outside_car",
        "key_scratching",
        "liveenv",
        "subway_broadcast",
    }
    assert TASKS["librispeech"].normalised_score(0.8) == pytest.approx(0.8)  # WER_inv is already inverted
    assert TASKS["cremad"].labels.default == -1 and TASKS["vocalsound"].labels.default == -1


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_challenge_variants_share_their_xares_task_data(name):
    base_name, metric, ncls, knn, weight = VARIANTS[name]
    t, base = TASKS[name], TASKS[base_name]
    assert (t.metric, t.output_dim, t.do_knn, t.eval_weight) == (metric, ncls, knn, weight)
    assert t.disabled and not t.private and t.domain == base.domain
    same = ("zenodo_id", "audio_tar_name_of_split", "encoded_tar_name_of_split", "epochs", "batch_size_train")
    assert all(getattr(t, f) == getattr(base, f) for f in (*same, "crop_length", "batch_size_encode", "seed"))
    assert t.splits() == base.splits() and t.fingerprint() != base.fingerprint()
    # `--suite all` runs the tasks that are not disabled: X-ARES's own, never a variant
    assert {n for n, task in TASKS.items() if not task.disabled} <= set(PINNED)


def test_nsynth_pitch_labels_are_midi_note_numbers():
    t = TASKS["nsynth_pitch"]
    meta = {"instrument_family_str": "guitar", "pitch": 60, "velocity": 75}
    assert [t.encode_label({**meta, "pitch": p}) for p in (0, 21, 60, 108, 127)] == [0, 21, 60, 108, 127]
    for bad in (128, -1, "60", 60.0):
        with pytest.raises(LabelError, match="task 'nsynth_pitch'.*'pitch'"):
            t.encode_label({**meta, "pitch": bad})
    with pytest.raises(LabelError, match="no key 'pitch'"):
        t.encode_label({"instrument_family_str": "guitar"})


def test_asvspoof_eer_scores_one_minus_eer():
    t = TASKS["asvspoof2015_eer"]
    assert t.labels == TASKS["asvspoof2015"].labels and t.encode_label({"binary_spoof": "spoof"}) == 1
    assert (t.metric_bounds, t.higher_is_better) == ((0.0, 1.0), False)
    assert [t.normalised_score(e) for e in (0.0, 0.1, 0.5, 1.0)] == pytest.approx([1.0, 0.9, 0.5, 0.0])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_is_sane(name):
    t = TASKS[name]
    assert (builtin_tasks_dir() / f"{name}.py").is_file()
    assert t.eval_weight > 0 and t.metric in METRICS and t.labels.resolved
    if t.task_type in ("clip", "frame"):
        assert t.labels.num_classes == t.output_dim
    if t.labels.classes is not None:
        assert len(t.labels.classes) == len(set(t.labels.classes)) == t.output_dim
    for pattern in [*t.audio_tar_name_of_split.values(), *t.encoded_tar_name_of_split.values()]:
        assert SHARD_GLOB.match(pattern), pattern
    units = t.splits()
    assert len(units) == (len(t.k_fold_splits) if t.is_kfold else 3)
    assert {glob for _, glob in units} == set(t.audio_tar_name_of_split.values())
    assert set(t.encoded_tar_name_of_split) == set(t.audio_tar_name_of_split)
    lo, hi = t.metric_bounds
    assert lo < hi and isinstance(t.higher_is_better, bool)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_round_trip_and_fingerprint(name):
    t = TASKS[name]
    dumped = json.loads(json.dumps(t.to_dict(), allow_nan=False))
    back = TaskConfig.from_dict(dumped)
    assert back == t and back.fingerprint() == t.fingerprint() and back.splits() == t.splits()
    assert re.fullmatch(r"[0-9a-f]{64}", t.fingerprint())
    assert load_tasks()[name].fingerprint() == t.fingerprint()
    for change in (
        {"epochs": t.epochs + 1},
        {"seed": 7},
        {"version": t.version + 1},
        {"learning_rate": 3e-4},
        {"crop_length": 3.5},
        {"batch_size_encode": t.batch_size_encode + 1},
        {"metric_args": {**t.metric_args, "x": 1}},
    ):
        assert dataclasses.replace(t, **change).fingerprint() != t.fingerprint(), change
    for change in ({"description": "other"}, {"eval_weight": 1}, {"disabled": not t.disabled}, {"licence": "x"}):
        assert dataclasses.replace(t, **change).fingerprint() == t.fingerprint(), change


def test_fingerprint_covers_labels_and_ignores_classes_file():
    t = TASKS["ravdess"]
    swapped = (t.labels.classes[1], t.labels.classes[0], *t.labels.classes[2:])
    assert (
        dataclasses.replace(t, labels=dataclasses.replace(t.labels, classes=swapped)).fingerprint() != t.fingerprint()
    )
    v = TASKS["voxlingua33"]
    assert v.labels.classes_file == "labels/voxlingua33.json"
    relocated = dataclasses.replace(v, labels=dataclasses.replace(v.labels, classes_file="/elsewhere.json"))
    assert relocated.fingerprint() == v.fingerprint()
    assert NOT_SCORE_RELEVANT <= {f.name for f in dataclasses.fields(TaskConfig)}


def test_construction_has_no_global_side_effects():
    threads = torch.get_num_threads()
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    load_tasks()
    TaskConfig.from_dict(TASKS["esc50"].to_dict())
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]


# -- labels ------------------------------------------------------------------------------------------


def test_class_labels_and_unknown_label_error():
    t = TASKS["gtzan_genre"]
    assert [t.encode_label({"genre": g}) for g in ("blues", "rock", "metal")] == [0, 9, 6]
    with pytest.raises(LabelError, match=r"task 'gtzan_genre'.*'genre'.*'polka'"):
        t.encode_label({"genre": "polka"})
    with pytest.raises(LabelError, match=r"task 'gtzan_genre'.*no key 'genre'"):
        t.encode_label({"style": "rock"})
    assert TASKS["cremad"].encode_label({"label": "X"}) == -1  # X-ARES's .get(label, -1)
    assert TASKS["cremad"].encode_label({"label": "N"}) == 5
    assert TASKS["liveenv"].encode_label({"soundevent": "BabySound "}) == 5
    with pytest.raises(LabelError, match="'BabySound'"):
        TASKS["liveenv"].encode_label({"soundevent": "BabySound"})
    assert TASKS["asvspoof2015"].encode_label({"binary_spoof": "spoof"}) == 1
    assert TASKS["voxceleb1"].encode_label({"speakerid": "id10003"}) == 0
    assert TASKS["fluentspeechcommands"].encode_label({"transcription": "OK now switch the main language to German"})


def test_index_and_binary_labels():
    assert TASKS["esc50"].encode_label({"label": 49}) == 49
    assert TASKS["libricount"].encode_label({"num_speakers": 0}) == 0
    for bad in (50, -1, "3", 2.0):
        with pytest.raises(LabelError, match="task 'esc50'.*'label'"):
            TASKS["esc50"].encode_label({"label": bad})
    mf = TASKS["librispeechmalefemale"]
    assert [mf.encode_label({"gender": g}) for g in ("M", "F", "m")] == [0, 1, 1]
    sub = TASKS["subway_broadcast"]
    assert [sub.encode_label({"broadcasting": v}) for v in (0, 1, "1", True, False)] == [0, 1, 1, 1, 0]
    with pytest.raises(LabelError, match="'broadcasting'"):
        sub.encode_label({"broadcasting": "yes"})


def test_multilabel_text_and_captions():
    fsd = TASKS["fsd50k"]
    hot = fsd.encode_label({"soundevent": "Accordion;Zipper_(clothing)"})
    assert len(hot) == 200 and sum(hot) == 2 and hot[1] == hot[199] == 1.0
    with pytest.raises(LabelError, match="task 'fsd50k'.*'Nope'"):
        fsd.encode_label({"soundevent": "Accordion;Nope"})
    assert TASKS["librispeech"].encode_label({"trans": "HELLO WORLD", "gender": "M"}) == "HELLO WORLD"
    caps = {"caption_1": "a", "caption_2": "b", "caption_3": "c", "caption_4": "d", "caption_5": "e"}
    assert TASKS["clotho"].encode_label(caps) == ["a", "b", "c", "d", "e"]
    with pytest.raises(LabelError, match="frame_targets"):
        TASKS["desed"].encode_label([])


def test_desed_frame_targets_hand_computed():
    desed = TASKS["desed"]
    events = [
        {"onset": 0.5, "offset": 2.0, "label": "Cat"},
        {"onset": 3.0, "offset": 4.2, "label": "Dog,Speech"},
        {"onset": 8.5, "offset": 12.0, "label": "Frying"},
    ]
    y = desed.frame_targets(events, hop_ms=1000)  # 10 s clip, 1 s hop: 10 frames
    assert y.shape == (10, 10) and y.dtype == np.float32
    classes = desed.labels.classes
    assert np.flatnonzero(y[classes.index("Cat")]).tolist() == [1]  # [ceil(0.5), ceil(2.0)) = [1, 2)
    assert np.flatnonzero(y[classes.index("Dog")]).tolist() == [3, 4]  # [3, ceil(4.2)=5)
    assert np.flatnonzero(y[classes.index("Speech")]).tolist() == [3, 4]
    assert np.flatnonzero(y[classes.index("Frying")]).tolist() == [9]  # clipped at the 10 s clip end
    assert y.sum() == 6
    assert desed.frame_targets(events, hop_ms=40).shape == (10, 250)
    assert desed.frame_targets(events, hop_ms=1000, n_frames=4).shape == (10, 4)
    padded = desed.frame_targets(events, hop_ms=1000, n_frames=12)
    assert padded.shape == (10, 12) and padded[:, 10:].sum() == 0
    assert desed.frame_targets([], hop_ms=20).shape == (10, 500)
    with pytest.raises(LabelError, match="task 'desed'.*'Cow'"):
        desed.frame_targets([{"onset": 0, "offset": 1, "label": "Cow"}], hop_ms=20)


def test_maestro_frame_targets_hand_computed():
    maestro = TASKS["maestro"]
    notes = [{"start": 0.0, "end": 0.25, "note": 21}, {"start": 0.1, "end": 0.3, "note": 107}]
    y = maestro.frame_targets(notes, hop_ms=100)  # T = ceil(0.3 / 0.1) = 3
    assert y.shape == (87, 3)
    assert y[0].tolist() == [1, 1, 1]  # note 21 -> class 0, frames [0, ceil(2.5) = 3)
    assert y[86].tolist() == [0, 1, 1]  # note 107 -> class 86, frames [1, 3)
    assert y.sum() == 5
    # X-ARES's float arithmetic: 0.07 / (10 / 1000) = 7.000000000000001 -> 8 frames
    assert maestro.frame_targets([{"start": 0.0, "end": 0.07, "note": 60}], hop_ms=10).shape == (87, 8)
    with pytest.raises(LabelError, match="task 'maestro'.*108"):
        maestro.frame_targets([{"start": 0.0, "end": 1.0, "note": 108}], hop_ms=10)


def test_label_spec_validation():
    with pytest.raises(LabelError, match="kind"):
        LabelSpec("regression", "x")
    with pytest.raises(LabelError, match="duplicates"):
        LabelSpec("class", "x", classes=("a", "b", "a"))
    with pytest.raises(LabelError, match="need classes"):
        LabelSpec("class", "x")
    with pytest.raises(LabelError, match="clip_seconds"):
        LabelSpec("events", "label", classes=("a",), start_key="on", end_key="off")
    spec = LabelSpec("class", "x", classes_file="labels/missing.json")
    assert not spec.resolved
    with pytest.raises(LabelError, match="not loaded"):
        spec.encode({"x": "a"})
    assert LabelSpec.from_dict(TASKS["desed"].labels.to_dict()) == TASKS["desed"].labels


def _kw(**over):
    base = dict(name="toy", domain="sound", labels=LabelSpec("class", "c", classes=("a", "b")), output_dim=2)
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"output_dim": 3}, "labels"),
        ({"output_dim": None}, "output_dim"),
        ({"domain": "video"}, "domain"),
        ({"task_type": "seq"}, "task_type"),
        ({"metric": "f2"}, "metric"),
        ({"metric": "MSE"}, "metric_bounds"),
        ({"metric_bounds": (1, 0)}, "metric_bounds"),
        ({"eval_weight": -1}, "eval_weight"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size_encode": 1.5}, "batch_size_encode"),
        ({"crop_length": 0}, "crop_length"),
        ({"k_fold_splits": [1]}, "k_fold_splits"),
        ({"audio_tar_name_of_split": {"train": "train*.tar"}}, "audio_tar_name_of_split"),
        ({"audio_tar_name_of_split": {"train": "../x.tar", "valid": "v.tar", "test": "t.tar"}}, "audio_tar_name"),
        ({"checksums": {"a.zip": "deadbeef"}}, "checksums"),
        ({"zenodo_id": "abc"}, "zenodo_id"),
        ({"task_type": "frame"}, "labels"),
        ({"criterion_args": {"w": object()}}, "criterion_args"),
        ({"train_split": "a/b"}, "train_split"),
    ],
)
def test_task_config_errors_name_task_and_field(over, field):
    with pytest.raises(TaskConfigError, match=rf"task 'toy': field '{field}"):
        TaskConfig(**_kw(**over))


def test_task_config_defaults_and_normalisation():
    t = TaskConfig(**_kw(metric="MSE", metric_bounds=(0, 4), zenodo_id=123, checksums={"a.zip": "md5:" + "0" * 32}))
    assert t.formal_name == "toy" and t.batch_size_valid == 32 and t.zenodo_id == "123"
    assert t.higher_is_better is False and t.normalised_score(1.0) == pytest.approx(0.75)
    assert t.audio_tar_name_of_split == {"train": "train*.tar", "valid": "valid*.tar", "test": "test*.tar"}
    wer = TaskConfig(**_kw(task_type="asr", labels=LabelSpec("text", "trans"), output_dim=None, metric="WER"))
    assert wer.normalised_score(0.25) == pytest.approx(0.75) and wer.normalised_score(1.7) == 0.0
    folds = TaskConfig(**_kw(k_fold_splits=["a", "b"]))
    assert folds.splits() == [("a", "wds-audio-fold-a-*.tar"), ("b", "wds-audio-fold-b-*.tar")]
    assert TaskConfig.from_dict(folds.to_dict()) == folds
    with pytest.raises(TaskConfigError, match="task 'toy': field 'bogus'"):
        TaskConfig.from_dict({**t.to_dict(), "bogus": 1})


# -- the registry ------------------------------------------------------------------------------------

USER_TASK = """
from xbench.taskspec.config import LabelSpec, TaskConfig

TASK = TaskConfig(
    name="my_birds",
    domain="sound",
    labels=LabelSpec("class", "species", classes_file="labels/birds.json"),
    output_dim=3,
    data_dir="shards",
    eval_weight=10,
)
"""


@pytest.fixture
def user_dir(tmp_path):
    folder = tmp_path / "user"
    (folder / "labels").mkdir(parents=True)
    (folder / "labels" / "birds.json").write_text(json.dumps(["robin", "wren", "tit"]))
    (folder / "my_birds.py").write_text(USER_TASK)
    return folder


def test_user_tasks_dir(user_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # any cwd
    tasks = load_tasks(user_dir)
    assert len(tasks) == len(TASKS) + 1
    t = tasks["my_birds"]
    assert t.labels.classes == ("robin", "wren", "tit") and t.encode_label({"species": "tit"}) == 2
    assert t.data_dir == str(user_dir / "shards")
    # a JSON declaration (a to_dict dump) loads too, classes inline
    (user_dir / "my_birds2.json").write_text(json.dumps({**t.to_dict(), "name": "my_birds2", "data_dir": None}))
    t2 = load_tasks(user_dir)["my_birds2"]
    assert t2.labels == t.labels and get_task("my_birds2", user_dir).data_dir is None


def test_duplicate_name_is_an_error_naming_both_files(user_dir):
    (user_dir / "esc50_again.json").write_text(json.dumps(TASKS["esc50"].to_dict()))
    with pytest.raises(TaskConfigError, match=r"'esc50' is declared twice.*esc50\.py.*esc50_again\.json"):
        load_tasks(user_dir)


def test_bad_user_declarations(user_dir):
    (user_dir / "labels" / "birds.json").write_text(json.dumps(["robin", "wren"]))
    with pytest.raises(TaskConfigError, match=r"my_birds\.py.*task 'my_birds': field 'labels': 2 classes"):
        load_tasks(user_dir)
    (user_dir / "my_birds.py").write_text("TASK = 3\n")
    with pytest.raises(TaskConfigError, match=r"my_birds\.py: must define TASK"):
        load_task_file(user_dir / "my_birds.py")
    with pytest.raises(TaskConfigError, match="not a folder"):
        load_tasks(user_dir / "nope")


def test_get_task_did_you_mean():
    assert get_task("esc50") is not None and get_task("ESC-50").name == "esc50"
    with pytest.raises(TaskNotFoundError, match="did you mean esc50"):
        get_task("esc5")


# -- ls / describe -----------------------------------------------------------------------------------


def _run(argv):
    return main(argv)


def test_expand_braces():
    assert expand_braces("v_00000{00..02}.tar") == ["v_0000000.tar", "v_0000001.tar", "v_0000002.tar"]
    assert expand_braces("a{1,2}{x,y}.tar") == ["a1x.tar", "a1y.tar", "a2x.tar", "a2y.tar"]


def test_ls_table_and_data_status(tmp_path, capsys):
    esc = tmp_path / "zenodo" / "14614287"
    esc.mkdir(parents=True)
    for k in range(1, 6):
        (esc / f"wds-audio-fold-{k}-000000.tar").write_bytes(b"")
    gtzan = tmp_path / "zenodo" / "14722472"
    gtzan.mkdir(parents=True)
    (gtzan / "gtzan_fold_0_0000000.tar").write_bytes(b"")
    assert data_status(TASKS["esc50"], tmp_path) == "yes"
    assert data_status(TASKS["gtzan_genre"], tmp_path) == "partial"
    assert data_status(TASKS["cremad"], tmp_path) == "no"

    assert _run(["ls", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["task", "domain", "metric", "tracks", "weight", "flags", "data"]
    rows = {line.split()[0]: line.split() for line in out[1:-1]}
    assert rows["esc50"] == ["esc50", "sound", "accuracy", "mlp+knn", "400", "-", "yes"]
    assert rows["liveenv"][3:] == ["mlp", "5000", "private,disabled", "no"]
    assert rows["gtzan_genre"][-1] == "partial" and len(rows) == 29
    assert rows["nsynth_pitch"] == ["nsynth_pitch", "music", "accuracy", "mlp+knn", "2000", "disabled", "no"]
    assert rows["asvspoof2015_eer"] == ["asvspoof2015_eer", "speech", "EER", "mlp", "2000", "disabled", "no"]
    assert out[-1] == "29 tasks, 1 with data"

    assert _run(["ls", "--json", "--data-root", str(tmp_path)]) == 0
    table = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert table["desed"]["tracks"] == ["mlp"] and table["esc50"]["data"] == "yes"


def test_ls_with_user_tasks(user_dir, capsys):
    assert _run(["ls", "--tasks-dir", str(user_dir)]) == 0
    assert any(line.startswith("my_birds ") for line in capsys.readouterr().out.splitlines())
    (user_dir / "dup.json").write_text(json.dumps(TASKS["esc50"].to_dict()))
    assert _run(["ls", "--tasks-dir", str(user_dir)]) == 2
    assert "declared twice" in capsys.readouterr().err


def test_describe(capsys):
    assert _run(["describe", "maestro"]) == 0
    out = capsys.readouterr().out
    fields = {line.split()[0] for line in out.splitlines()}
    assert {f.name for f in dataclasses.fields(TaskConfig)} | {"splits", "fingerprint", "data_folder"} == fields
    assert re.search(r"^criterion_args +\{\"pos_weight\": 10\}$", out, re.M)
    assert TASKS["maestro"].fingerprint() in out and "... 77 more" in out
    assert _run(["describe", "maestro", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data.pop("fingerprint") == TASKS["maestro"].fingerprint()
    assert TaskConfig.from_dict(data) == TASKS["maestro"]
    assert _run(["describe", "maestr"]) == 2
    assert "did you mean maestro" in capsys.readouterr().err


def test_ls_and_describe_are_wired_into_the_cli(capsys):
    from xbench.cli import build_parser

    parser = build_parser()
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"ls", "describe"} <= set(choices)
    args = parser.parse_args(["describe", "esc50"])
    assert args.func(args) == 0 and "wds-audio-fold-1-*.tar" in capsys.readouterr().out
    args = parser.parse_args(["ls"])
    assert args.func(args) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {"esc50", "maestro", "fsd50k"} <= listed


# -- the X-ARES 0.1.3 package as an oracle -----------------------------------------------------------

ORACLE = textwrap.dedent(
    """
    import importlib, json, sys, types
    import torch
    probes = json.load(sys.stdin)
    enc = types.SimpleNamespace(hop_size_in_ms=40.0)
    FILES = ["asvspoof", "clotho", "crema_d", "desed", "esc50", "finger_snap", "fluentspeechcommands_kws",
             "freemusicarchive_genre", "fsd50k", "fsdkaggle2018", "gtzan", "inside_outside_car", "key_scratching",
             "libricount", "librispeech_asr", "librispeech_male_female", "liveenv", "maestro", "nsynth_instument",
             "ravdess", "speechcommandsv1", "subway_broadcast", "urbansound8k", "vocalimitations", "vocalsound",
             "voxceleb1", "voxlingua33"]
    def plain(x):
        return x.tolist() if isinstance(x, torch.Tensor) else x
    out = {}
    for f in FILES:
        mod = importlib.import_module(f"tasks.{f}_task")
        (fn,) = [v for k, v in vars(mod).items() if k.endswith("_config") and callable(v)]
        c = fn(enc)
        crit = c.criterion if isinstance(c.criterion, str) else [type(c.criterion).__name__,
                                                                  c.criterion.pos_weight.item()]
        kf = c.k_fold_splits
        row = dict(formal_name=c.formal_name, private=c.private, disabled=c.disabled, task_type=c.task_type,
                   eval_weight=c.eval_weight, k_fold_splits=kf,
                   splits=None if kf else [c.train_split, c.valid_split, c.test_split],
                   audio={str(k): v for k, v in c.audio_tar_name_of_split.items()},
                   encoded={str(k): v for k, v in c.encoded_tar_name_of_split.items()},
                   zenodo_id=c.zenodo_id, batch_size_encode=c.batch_size_encode, crop_length=c.crop_length,
                   save_encoded_per_batches=c.save_encoded_per_batches, criterion=crit,
                   batch_size_train=c.batch_size_train, batch_size_valid=c.batch_size_valid,
                   learning_rate=c.learning_rate, epochs=c.epochs, valid_every=c.valid_every,
                   output_dim=c.output_dim, metric=c.metric,
                   metric_args={k: v for k, v in c.metric_args.items() if k != "hop_size_in_ms"},
                   do_knn=c.do_knn, pretrained_dependencies=c.pretrained_dependencies, seed=c.seed)
        p = probes.get(c.name, {})
        if c.label_processor is not None:
            labels = []
            for hop, obj in p.get("frame", []):
                enc.hop_size_in_ms = hop
                labels.append(plain(c.label_processor(obj)))
            row["labels"] = labels + [plain(c.label_processor(obj)) for obj in p.get("clip", [])]
        if c.merge_processor is not None:
            row["labels"] = [list(s[1:2]) for s in c.merge_processor(iter([("audio", o, "k") for o in p["clip"]]))]
        out[c.name] = row
    json.dump(out, sys.stdout)
    """
)


def _probes(t: TaskConfig, rng: random.Random) -> tuple[dict, list]:
    """Inputs for X-ARES's label processors and xbench's expected outputs."""
    spec, kind = t.labels, t.labels.kind
    if kind in ("events", "notes"):
        frame = []
        for hop in (10.0, 20.0, 40.0, 1000 / 6):
            items = []
            for _ in range(rng.randint(1, 6)):
                start = round(rng.uniform(0, 9), rng.choice([1, 2, 3]))
                end = round(start + rng.uniform(0.01, 3), rng.choice([1, 2, 3]))
                label = rng.choice(spec.classes)
                if kind == "events" and rng.random() < 0.3:
                    label = f"{label},{rng.choice(spec.classes)}"
                items.append({spec.start_key: start, spec.end_key: end, spec.field: label})
            frame.append([hop, items])
        expected = [t.frame_targets(items, hop).tolist() for hop, items in frame]
        return {"frame": frame}, expected
    if kind == "class":
        objs = [{spec.field: c} for c in spec.classes]
        if spec.default is not None:
            objs.append({spec.field: "__unknown__"})
    elif kind == "index":
        objs = [{spec.field: i} for i in range(t.output_dim)]
    elif kind == "binary_map":
        values = ["M", "F", "x"] if spec.zero_value is not None else [0, 1, "0", "1", True, False]
        objs = [{spec.field: v} for v in values]
    elif kind == "multilabel":
        objs = [{spec.field: c} for c in spec.classes]
        objs += [{spec.field: ";".join(rng.sample(spec.classes, 3))} for _ in range(5)]
    elif kind == "captions":
        objs = [{f"caption_{i}": f"text {i} {j}" for i in range(1, 6)} for j in range(3)]
        return {"clip": objs}, [[c] for o in objs for c in t.encode_label(o)]
    else:
        return {}, None  # asr: X-ARES reads json["trans"] in the batch preparation
    return {"clip": objs}, [t.encode_label(o) for o in objs]


def test_against_the_xares_package(tmp_path):
    require_oracle("xares.task")
    rng = random.Random(0)
    probes, expected = {}, {}
    for name, t in XARES.items():
        probes[name], expected[name] = _probes(t, rng)
    run = subprocess.run(
        [sys.executable, "-c", ORACLE],
        input=json.dumps(probes),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    oracle = json.loads(run.stdout)
    assert set(oracle) == set(XARES)
    for name, row in oracle.items():
        t = TASKS[name]
        crit = t.criterion if not t.criterion_args else [t.criterion, t.criterion_args["pos_weight"]]
        mine = dict(
            formal_name=t.formal_name,
            private=t.private,
            disabled=t.disabled,
            task_type=t.task_type,
            eval_weight=t.eval_weight,
            k_fold_splits=list(t.k_fold_splits) if t.k_fold_splits else None,
            splits=None if t.is_kfold else [t.train_split, t.valid_split, t.test_split],
            audio={str(k): v for k, v in t.audio_tar_name_of_split.items()},
            encoded={str(k): v for k, v in t.encoded_tar_name_of_split.items()},
            zenodo_id=t.zenodo_id,
            batch_size_encode=t.batch_size_encode,
            crop_length=t.crop_length,
            save_encoded_per_batches=t.save_encoded_per_batches,
            criterion=crit,
            batch_size_train=t.batch_size_train,
            batch_size_valid=t.batch_size_valid,
            learning_rate=t.learning_rate,
            epochs=t.epochs,
            valid_every=t.valid_every,
            output_dim=t.output_dim,
            metric=t.metric,
            metric_args=t.metric_args,
            do_knn=t.do_knn,
            pretrained_dependencies=list(t.pretrained_dependencies) if t.pretrained_dependencies else None,
            seed=t.seed,
        )
        if expected[name] is not None:
            mine["labels"] = expected[name]
        assert {k: row.get(k) for k in mine} == mine, name
