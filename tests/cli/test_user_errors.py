"""Each user error of `xbench run` / `xbench check` is exactly one line starting with ``error:``, exit code 2
and no traceback (tracebacks only with ``--debug``): a device torch cannot use, a bad batch size, an empty
shard (a tar with no members, a zero-byte file, a file that is no tar), a task declaration missing a field,
a split pattern matching a folder, and data whose checksums no longer match its download marker or its
declaration (``--verify-data``).
"""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest
import torch
from fake_zenodo import FakeZenodo

from xbench.cli import main
from xbench.core.atomic_io import sha256_file
from xbench.core.paths import record_dir
from xbench.data.zenodo import md5sum
from xbench.taskspec.config import TaskConfig

from conftest import clip_task, tone_items


def _declare(tmp_path, **fields) -> TaskConfig:
    """The task ``errs`` (two shards of three clips per split) declared in ``tmp_path/tasks``."""
    data = tmp_path / "data"
    splits = {
        split: tone_items(seed, ["a", "b"] * 3, {"a": 300.0, "b": 2000.0}, split[2:4])
        for seed, split in enumerate(("e_train", "e_valid", "e_test"))
    }
    task = clip_task(data, "errs", splits, ("a", "b"), per_shard=3, epochs=1)
    task = TaskConfig.from_dict({**task.to_dict(), **fields})
    (tmp_path / "tasks").mkdir(exist_ok=True)
    (tmp_path / "tasks" / "errs.json").write_text(json.dumps(task.to_dict()))
    return task


def _run(tmp_path, *extra: str, task: str = "errs") -> list[str]:
    return [
        "run", "--encoder", "logmel", "--tasks", task, "--tasks-dir", str(tmp_path / "tasks"), "--track", "knn",
        "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--bootstrap", "10", *extra,
    ]  # fmt: skip


def _one_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert err.splitlines()[-1] == errors[0], err  # nothing continues the error on further lines
    return errors[0]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _no_device() -> str:
    return "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"


def test_a_device_torch_cannot_use(tmp_path, capsys):
    _declare(tmp_path)
    line = _one_error(capsys, _run(tmp_path, "--device", _no_device()))
    assert line.startswith(f"error: device '{_no_device()}' is not available")
    line = _one_error(capsys, ["check", "--encoder", "logmel", "--device", _no_device()])
    assert "is not available" in line
    assert "is not a device name" in _one_error(capsys, _run(tmp_path, "--device", "gpu"))


@pytest.mark.parametrize("size", ["-1", "0"])
def test_a_batch_size_below_one(tmp_path, capsys, size):
    _declare(tmp_path)
    assert _one_error(capsys, _run(tmp_path, "--batch-size", size)) == (
        f"error: batch size must be a positive integer, got {size}"
    )


def test_an_empty_shard(tmp_path, capsys):
    _declare(tmp_path)
    empty = tmp_path / "data" / "e_train-000002.tar"
    tarfile.open(empty, "w").close()  # a valid tar with no members
    line = _one_error(capsys, _run(tmp_path))
    assert line == f"error: shard {empty}: holds no samples (an empty tar, or only folders and metadata)"


def test_a_zero_byte_shard(tmp_path, capsys):
    _declare(tmp_path)
    empty = tmp_path / "data" / "e_train-000002.tar"
    empty.write_bytes(b"")  # e.g. a copy that was interrupted
    line = _one_error(capsys, _run(tmp_path))
    assert line == f"error: shard {empty}: not a readable tar (empty file, 0 bytes)"


def test_a_shard_that_is_not_a_tar(tmp_path, capsys):
    _declare(tmp_path)
    garbage = tmp_path / "data" / "e_valid-000002.tar"
    garbage.write_bytes(b"not a tar at all" * 64)
    line = _one_error(capsys, _run(tmp_path))
    assert line == f"error: shard {garbage}: not a readable tar: invalid header"


def test_a_declaration_missing_a_field_names_it(tmp_path, capsys):
    task = _declare(tmp_path).to_dict()
    del task["domain"]
    (tmp_path / "tasks" / "errs.json").write_text(json.dumps(task))
    line = _one_error(capsys, _run(tmp_path))
    assert line.endswith("errs.json: task 'errs': field 'domain': required but missing")


def test_a_split_pattern_matching_a_folder(tmp_path, capsys):
    _declare(tmp_path)
    folder = tmp_path / "data" / "e_test-000009.tar"
    folder.mkdir()  # e.g. a shard unpacked in place
    line = _one_error(capsys, _run(tmp_path))
    assert line == (
        f"error: task errs: shard pattern 'e_test*.tar' of split 'e_test' matches the folder {folder}, "
        "not a .tar shard file (move or rename it)"
    )


def test_debug_shows_the_traceback_of_a_user_error(tmp_path, capsys):
    _declare(tmp_path)
    assert main(_run(tmp_path, "--batch-size", "-1", "--debug")) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.splitlines()[-1].startswith("error: batch size")


def test_verify_data_refuses_data_changed_since_download(tmp_path, capsys, monkeypatch):
    _declare(tmp_path, zenodo_id=130, data_dir=None)
    shards = tmp_path / "data"  # served as the task's Zenodo record, downloaded into the data root
    root = tmp_path / "root"
    with FakeZenodo() as fake:
        fake.add_record(130, {p.name: p.read_bytes() for p in sorted(shards.iterdir())})
        monkeypatch.setenv("XBENCH_ZENODO_URL", fake.url)
        assert main(["download", "errs", "--tasks-dir", str(tmp_path / "tasks"), "--data-root", str(root)]) == 0
    assert main([*_run(tmp_path, "--data-root", str(root)), "--verify-data"]) == 0
    capsys.readouterr()

    changed = record_dir(130, root) / "e_test-000000.tar"
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one audio sample
    changed.write_bytes(bytes(data))
    data[len(data) // 2] ^= 0x01  # the bytes as downloaded
    argv = [*_run(tmp_path, "--data-root", str(root), "--output", str(tmp_path / "o2")), "--verify-data"]
    line = _one_error(capsys, argv)
    assert line.startswith("error: --verify-data: task errs: record 130: 1 changed and 0 missing of the 6 files")
    assert line.endswith(f"(first: {changed}: md5:{md5sum(changed)}, recorded at download md5:{md5(data)})")
    assert not (tmp_path / "o2").exists()  # refused before any work
    # without the check the corrupted shard is read as if nothing happened
    assert main(_run(tmp_path, "--data-root", str(root), "--output", str(tmp_path / "o3"))) == 0


def test_verify_data_refuses_data_its_declaration_pins_otherwise(tmp_path, capsys):
    """A task without a Zenodo record (as the offline suite's) is checked against its declared checksums."""
    task = _declare(tmp_path)
    shards = sorted((tmp_path / "data").glob("*.tar"))
    pins = {p.name: f"sha256:{sha256_file(p)}" for p in shards}
    pins[shards[0].name] = f"md5:{md5sum(shards[0])}"  # either algorithm, as written
    (tmp_path / "tasks" / "errs.json").write_text(json.dumps({**task.to_dict(), "checksums": pins}))
    assert main([*_run(tmp_path), "--verify-data"]) == 0
    capsys.readouterr()

    changed = tmp_path / "data" / "e_valid-000001.tar"
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one audio sample
    changed.write_bytes(bytes(data))
    line = _one_error(capsys, [*_run(tmp_path, "--output", str(tmp_path / "o2")), "--verify-data"])
    assert line == (
        f"error: --verify-data: task errs: 1 changed and 0 missing of the {len(shards)} files the declaration's "
        f"checksums name in {tmp_path / 'data'} (first: {changed}: sha256:{sha256_file(changed)}, "
        f"declared {pins[changed.name]})"
    )
    assert not (tmp_path / "o2").exists()  # refused before any work
    changed.unlink()
    line = _one_error(capsys, [*_run(tmp_path, "--output", str(tmp_path / "o2")), "--verify-data"])
    assert line.startswith("error: --verify-data: task errs: 0 changed and 1 missing of")
    assert line.endswith(f"(first: missing {changed})")
