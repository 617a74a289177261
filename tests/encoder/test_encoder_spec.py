"""``--encoder`` with its options (:mod:`xbench.encoder.spec`): the forms it takes, and the name results give the
encoder (what the user typed plus the identity hash; ``--name`` overrides and changes no cache key)."""

import json

import pytest

from xbench.cli import main
from xbench.encoder.contract import EncoderLoadError
from xbench.encoder.identity import encoder_fingerprint
from xbench.encoder.spec import EncoderSpec, encoder_name, name_slug, result_slug
from xbench.encoders.baselines import LogMelEncoder

from conftest import BROKEN, clip_task, tone_items

IDENTITY = {"class": "x.Enc", "state_sha256": "0" * 64}


def test_parse_forms(tmp_path):
    assert EncoderSpec.parse("dasheng-base=/w/ckpt.pt") == EncoderSpec("dasheng-base", weights="/w/ckpt.pt")
    assert EncoderSpec.parse("dasheng", weights="x.pt", layer="3").layer == "3"
    assert EncoderSpec.parse("hf:org/m@main").target == "hf:org/m@main"  # '=' and '@' belong to the id
    odd = tmp_path / "a=b.py"
    odd.write_text("")
    assert EncoderSpec.parse(str(odd)) == EncoderSpec(str(odd))  # an existing path with '=' is a path
    with pytest.raises(EncoderLoadError, match="weights given twice"):
        EncoderSpec.parse("dasheng=a.pt", weights="b.pt")
    with pytest.raises(EncoderLoadError, match="no encoder named before '='"):
        EncoderSpec.parse("=a.pt")
    with pytest.raises(EncoderLoadError, match="--name must not be empty"):
        EncoderSpec.parse("logmel", name=" ")


def test_canonical_text_resolves_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    described = json.loads(str(EncoderSpec.parse("dasheng=ckpt.pt", layer=2)))
    assert described == {
        "target": "dasheng",
        "weights": str(tmp_path / "ckpt.pt"),
        "layer": 2,
        "trust_remote_code": False,
    }
    assert "name" not in json.loads(str(EncoderSpec("logmel", name="other")))  # the name keys nothing


@pytest.mark.parametrize(
    ("spec", "identity", "name"),
    [
        (EncoderSpec("logmel"), IDENTITY, "logmel"),
        (EncoderSpec(str(BROKEN)), IDENTITY, "broken_encoders"),
        (EncoderSpec(f"{BROKEN}:NoForwardEncoder"), IDENTITY, "broken_encoders.NoForwardEncoder"),
        (EncoderSpec("pkg.mod:Name"), IDENTITY, "pkg.mod:Name"),
        (EncoderSpec("dasheng-base", weights="/ckpts/mae_step10.pt"), IDENTITY, "dasheng-base@mae_step10"),
        (EncoderSpec("hubert-base", layer="mean"), IDENTITY, "hubert-base-layermean"),
        (
            EncoderSpec("hf:org/m@main", layer=3),
            {**IDENTITY, "settings": {"model": "org/m", "revision": "abcdef0123456789" * 2 + "abcdef01"}},
            "hf:org/m@abcdef012345-layer3",
        ),
        (EncoderSpec("hf:/models/my-w2v"), {**IDENTITY, "settings": {"model": None, "revision": None}}, "hf:my-w2v"),
        (EncoderSpec("logmel", name="baseline A"), IDENTITY, "baseline A"),
    ],
)
def test_names_follow_what_was_typed(spec, identity, name):
    assert encoder_name(spec, identity) == name
    assert result_slug(spec, identity) == f"{name_slug(name)}-{encoder_fingerprint(identity)[:16]}"


def test_a_module_instance_keeps_its_class_name():
    assert encoder_name(LogMelEncoder(), IDENTITY) == "LogMelEncoder"
    assert name_slug("hf:org/m@abc") == "hf_org_m@abc" and name_slug("baseline A") == "baseline_A"


def test_name_changes_results_folder_not_cache(tmp_path):
    freqs = {"a": 300.0, "b": 2000.0}
    splits = {s: tone_items(i, ["a", "b"] * 2, freqs, s[:2]) for i, s in enumerate(("tr", "va", "te"))}
    task = clip_task(tmp_path / "data", "named", splits, ("a", "b"), epochs=1)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "named.json").write_text(json.dumps(task.to_dict()))
    common = ["--tasks", "named", "--tasks-dir", str(tmp_path / "tasks"), "--track", "knn", "--bootstrap", "5"]
    common += ["--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    assert main(["run", "--encoder", "logmel", *common]) == 0
    units = sorted((tmp_path / "cache" / "embeddings").rglob("*.npz"))
    stamps = [u.stat().st_mtime_ns for u in units]
    assert main(["run", "--encoder", "logmel", "--name", "my log-mel", *common]) == 0
    folders = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(folders) == 2 and folders[0].startswith("logmel-") and folders[1].startswith("my_log-mel-")
    assert folders[0].split("-")[-1] == folders[1].split("-")[-1]  # one identity
    assert sorted((tmp_path / "cache" / "embeddings").rglob("*.npz")) == units  # nothing embedded again
    assert [u.stat().st_mtime_ns for u in units] == stamps
    record = json.loads((tmp_path / "out" / folders[1] / "xbench" / "named@v1.json").read_text())
    assert record["encoder_slug"] == folders[1]
