"""One shard resolver for ``xbench ls`` and ``xbench run``: brace expansion, globs, shards named but missing."""

import json

import pytest

from xbench.cli import main
from xbench.data.shard_patterns import expand_braces, resolve_shards
from xbench.embed.encode import plan_units
from xbench.taskspec.config import LabelSpec, TaskConfig
from xbench.taskspec.listing import data_status, task_shards


@pytest.mark.parametrize(
    "pattern, expanded",
    [
        ("train-{000000..000003}.tar", [f"train-00000{i}.tar" for i in range(4)]),
        ("f{8..10}.tar", ["f8.tar", "f9.tar", "f10.tar"]),
        ("f{08..10}.tar", ["f08.tar", "f09.tar", "f10.tar"]),
        ("f{2..0}.tar", ["f2.tar", "f1.tar", "f0.tar"]),
        ("a{1,2}{x,y}.tar", ["a1x.tar", "a1y.tar", "a2x.tar", "a2y.tar"]),
        ("x{a,{b,c}d}.tar", ["xa.tar", "xbd.tar", "xcd.tar"]),
        ("{,v}a.tar", ["a.tar", "va.tar"]),
        ("{single}-{1,2}.tar", ["{single}-1.tar", "{single}-2.tar"]),
        ("open{.tar", ["open{.tar"]),
        ("wds-audio-fold-1-*.tar", ["wds-audio-fold-1-*.tar"]),
    ],
)
def test_expand_braces(pattern, expanded):
    assert expand_braces(pattern) == expanded


def test_resolve_shards_globs_each_expansion_and_reports_named_shards_that_are_missing(tmp_path):
    for name in ("train-000000.tar", "train-000002.tar", "valid-a.tar", "valid-b.tar", "test-x.tar", "other.tar"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "train-000009.tar").mkdir()  # a folder is never a shard
    match = resolve_shards(tmp_path, "train-{000000..000002}.tar")
    assert [p.name for p in match.found] == ["train-000000.tar", "train-000002.tar"]
    assert [p.name for p in match.missing] == ["train-000001.tar"] and not match.complete
    match = resolve_shards(tmp_path, "{valid,test}-*.tar")
    assert [p.name for p in match.found] == ["test-x.tar", "valid-a.tar", "valid-b.tar"] and match.complete
    globbed = resolve_shards(tmp_path, "train-00000[0-9].tar")
    assert [p.name for p in globbed.found] == ["train-000000.tar", "train-000002.tar"]
    assert [p.name for p in globbed.folders] == ["train-000009.tar"] and not globbed.complete  # a run refuses it
    assert resolve_shards(tmp_path / "absent", "*.tar").found == ()


def _task(folder):
    return TaskConfig(
        name="brace_task",
        domain="sound",
        labels=LabelSpec("class", "label", classes=("a", "b")),
        output_dim=2,
        data_dir=str(folder),
        audio_tar_name_of_split={
            "train": "train-{000000..000002}.tar",  # brace range: ls expanded it, run globbed it literally
            "valid": "{valid,extra}-*.tar",  # braces and a wildcard: ls globbed it literally
            "test": "test-000000.tar",
        },
    )


def test_ls_and_run_resolve_the_same_shards(tmp_path, capsys):
    names = [f"train-00000{i}.tar" for i in range(3)] + ["valid-0.tar", "extra-0.tar", "test-000000.tar"]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    task = _task(tmp_path)
    listed = {split: [p.name for p in paths] for split, paths in task_shards(task).items()}
    units = plan_units(task, tmp_path, tmp_path / "units", {"encoder": "e"}, "xares")
    planned = {unit.split: [name.rsplit("/", 1)[-1] for name in unit.shards] for unit in units}
    assert listed == planned == {
        "train": names[:3],
        "valid": ["extra-0.tar", "valid-0.tar"],
        "test": ["test-000000.tar"],
    }
    assert data_status(task) == "yes"

    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "brace_task.json").write_text(json.dumps(task.to_dict()))
    assert main(["ls", "--tasks-dir", str(tasks_dir), "--json"]) == 0
    (row,) = [r for r in json.loads(capsys.readouterr().out) if r["name"] == "brace_task"]
    assert row["data"] == "yes"

    (tmp_path / "train-000001.tar").unlink()  # a shard the range names is missing: both notice
    assert data_status(task) == "partial"
    with pytest.raises(FileNotFoundError, match=r"brace_task: 1 shard\(s\) named by .* missing \(e\.g\. train-000001"):
        plan_units(task, tmp_path, tmp_path / "units", {"encoder": "e"}, "xares")


def test_a_folder_matching_a_split_is_not_complete_data_for_ls_as_it_is_not_for_a_run(tmp_path):
    names = [f"train-00000{i}.tar" for i in range(3)] + ["valid-0.tar", "test-000000.tar"]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / "valid-unpacked.tar").mkdir()  # an extracted shard left under a shard's name
    task = _task(tmp_path)
    assert not resolve_shards(tmp_path, "{valid,extra}-*.tar").complete
    assert data_status(task) == "partial"
    with pytest.raises(Exception, match="not a .tar shard file"):
        plan_units(task, tmp_path, tmp_path / "units", {"encoder": "e"}, "xares")
