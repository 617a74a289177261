"""Stage 0 download: verified, resumable Zenodo transfers against a local fake Zenodo server."""

from __future__ import annotations

import hashlib
import io
import json
import random
import stat
import sys
import tarfile
import threading
import types
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fake_zenodo import FakeZenodo

from xbench.cli import main
from xbench.core.paths import record_dir
from xbench.data import download as download_mod
from xbench.data.download import (
    MARKER_NAME,
    RECORD_CACHE_NAME,
    download_tasks,
    is_downloaded,
    read_marker,
)
from xbench.data.safe_extract import ArchiveError, UnsafeArchiveError, is_archive, safe_extract
from xbench.data.zenodo import (
    IntegrityError,
    PinnedChecksumError,
    RateLimitError,
    ZenodoError,
    fetch_record,
    parse_record,
    resolve_base_url,
)


@dataclass(frozen=True)
class Task:
    name: str
    zenodo_id: int | None = None
    private: bool = False
    checksums: Mapping[str, str] = field(default_factory=dict)
    data_dir: str | None = None


def blob(seed: int, size: int = 64 * 1024) -> bytes:
    return random.Random(seed).randbytes(size)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def shard(seed: int, n: int = 3) -> bytes:
    """A small WebDataset-style tar shard: ``<key>.wav`` + ``<key>.json`` members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for i in range(n):
            for ext, data in (("wav", blob(seed * 100 + i, 4000)), ("json", b'{"label": 1}')):
                info = tarfile.TarInfo(f"clip{seed}_{i}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_of(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


@pytest.fixture
def fake():
    with FakeZenodo() as server:
        yield server


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "data"


def run(tasks, root, fake=None, **kw):
    kw.setdefault("retries", 2)
    kw.setdefault("backoff", 0.0)
    kw.setdefault("progress", False)
    if fake is not None:
        kw.setdefault("base_url", fake.url)
    return download_tasks(tasks, root=root, **kw)


SHARDS = {"wds-audio-train-000000.tar": shard(1), "wds-audio-test-000000.tar": shard(2)}


# -- plain download --------------------------------------------------------------------------------------
@pytest.mark.parametrize("link_style", ["self", "content", "none"])
def test_download_verifies_checksums_and_writes_marker(link_style, root):
    with FakeZenodo(link_style=link_style) as fake:
        fake.add_record(101, SHARDS)
        (result,) = run([Task("t", 101)], root, fake)
        assert result.status == "downloaded", result.message
        folder = record_dir(101, root)
        assert result.folder == folder
        for name, data in SHARDS.items():
            assert (folder / name).read_bytes() == data
        assert not list(folder.glob("*.part"))
        # plain .tar files are WebDataset shards: never extracted
        assert not list(folder.glob("clip*"))
        marker = read_marker(folder, 101)
        assert marker is not None
        assert marker["files"] == {name: f"md5:{md5(data)}" for name, data in SHARDS.items()}
        assert json.loads((folder / RECORD_CACHE_NAME).read_text())["id"] == 101
        assert is_downloaded(Task("t", 101), root)

        before = sum(fake.requests.values())
        (again,) = run([Task("t", 101)], root, fake)
        assert again.status == "present"
        assert sum(fake.requests.values()) == before  # a complete record makes no request at all


def test_corrupted_file_is_deleted_and_named(fake, root):
    data = blob(7)
    fake.add_record(102, {"a.tar": data, "b.tar": blob(8)})
    fake.corrupt["a.tar"] = 99
    (result,) = run([Task("t", 102)], root, fake)
    assert result.status == "error"
    assert isinstance(result.error, IntegrityError)
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    assert (result.error.name, result.error.expected, result.error.actual) == ("a.tar", md5(data), md5(bytes(bad)))
    assert "a.tar" in result.message and md5(data) in result.message and md5(bytes(bad)) in result.message
    folder = record_dir(102, root)
    assert not (folder / "a.tar").exists() and not (folder / "a.tar.part").exists()
    assert not (folder / MARKER_NAME).exists()
    assert fake.requests[fake.file_path(102, "a.tar")] == 2  # retried once, then reported
    assert not is_downloaded(Task("t", 102), root)


def test_corruption_once_is_fetched_again(fake, root):
    fake.add_record(103, {"a.tar": blob(9)})
    fake.corrupt["a.tar"] = 1
    (result,) = run([Task("t", 103)], root, fake)
    assert result.status == "downloaded", result.message
    assert fake.requests[fake.file_path(103, "a.tar")] == 2
    assert (record_dir(103, root) / "a.tar").read_bytes() == blob(9)


# -- resume ----------------------------------------------------------------------------------------------
def test_interrupted_transfer_resumes_from_partial_byte_count(fake, root):
    data = blob(11)
    fake.add_record(104, {"a.tar": data})
    fake.cut_after["a.tar"] = (20_000, 1)
    (result,) = run([Task("t", 104)], root, fake)
    assert result.status == "downloaded", result.message
    path = fake.file_path(104, "a.tar")
    assert [r for p, r in fake.ranges if p == path] == [None, "bytes=20000-"]
    assert (record_dir(104, root) / "a.tar").read_bytes() == data


def test_partial_file_of_an_earlier_run_is_continued(fake, root):
    data = blob(12)
    fake.add_record(105, {"a.tar": data})
    fake.cut_after["a.tar"] = (30_000, 1)
    (first,) = run([Task("t", 105)], root, fake, retries=0)
    assert first.status == "error" and "cut off at byte 30000" in first.message
    folder = record_dir(105, root)
    assert (folder / "a.tar.part").stat().st_size == 30_000
    assert not (folder / "a.tar").exists()

    (offline,) = run([Task("t", 105)], root, fake, offline=True)
    assert offline.missing == [folder / "a.tar"]
    assert "partial: 30000 bytes" in offline.line()

    (second,) = run([Task("t", 105)], root, fake)
    assert second.status == "downloaded", second.message
    path = fake.file_path(105, "a.tar")
    assert [r for p, r in fake.ranges if p == path] == [None, "bytes=30000-"]
    assert (folder / "a.tar").read_bytes() == data


def test_server_ignoring_range_restarts_cleanly(fake, root):
    data = blob(13)
    fake.add_record(106, {"a.tar": data})
    fake.ignore_range = True
    folder = record_dir(106, root)
    folder.mkdir(parents=True)
    (folder / "a.tar.part").write_bytes(b"x" * 20_000)  # appending to this would corrupt the file
    (result,) = run([Task("t", 106)], root, fake)
    assert result.status == "downloaded", result.message
    path = fake.file_path(106, "a.tar")
    assert [r for p, r in fake.ranges if p == path] == ["bytes=20000-"]
    assert (folder / "a.tar").read_bytes() == data


# -- rate limiting ---------------------------------------------------------------------------------------
def test_rate_limit_once_is_retried(fake, root):
    fake.add_record(107, {"a.tar": blob(14)})
    fake.rate_limit_once = {fake.record_path(107), fake.file_path(107, "a.tar")}
    (result,) = run([Task("t", 107)], root, fake)
    assert result.status == "downloaded", result.message
    assert fake.requests[fake.record_path(107)] == 2
    assert fake.requests[fake.file_path(107, "a.tar")] == 2


def test_rate_limit_exhausted_gives_a_clear_error(fake, root):
    fake.add_record(108, {"a.tar": blob(15)})
    fake.rate_limit_once = {fake.record_path(108)}
    (result,) = run([Task("t", 108)], root, fake, retries=0)
    assert result.status == "error"
    assert isinstance(result.error, RateLimitError)
    assert "HTTP 429" in result.message and "--mirror" in result.message


def test_unknown_record_is_an_error(fake, root):
    (result,) = run([Task("t", 999)], root, fake)
    assert result.status == "error" and isinstance(result.error, ZenodoError)
    assert "404" in result.message
    assert fake.requests[fake.record_path(999)] == 1  # a 404 is not retried


# -- shared records, private tasks -------------------------------------------------------------------------
def test_shared_record_is_fetched_once(fake, root):
    fake.add_record(14716252, SHARDS)
    asr, mf = Task("librispeech", 14716252), Task("librispeechmalefemale", 14716252)
    results = run([asr, mf], root, fake)
    assert [r.task for r in results] == ["librispeech", "librispeechmalefemale"]
    assert [r.status for r in results] == ["downloaded", "downloaded"]
    assert results[0].folder == results[1].folder == record_dir(14716252, root)
    assert "shared with librispeech" in results[1].message
    assert fake.requests[fake.record_path(14716252)] == 1
    for name in SHARDS:
        assert fake.requests[fake.file_path(14716252, name)] == 1
    assert is_downloaded(asr, root) and is_downloaded(mf, root)


def test_private_task_is_never_downloaded(fake, root):
    fake.add_record(109, {"a.tar": blob(16)})
    tasks = [Task("subway_broadcast", private=True), Task("odd", 109, private=True)]
    results = run(tasks, root, fake)
    assert [r.status for r in results] == ["private", "private"] and all(r.ok for r in results)
    assert results[0].message == f"private: place the shards in {root / 'local' / 'subway_broadcast'}"
    assert results[1].message == f"private: place the shards in {record_dir(109, root)}"
    assert results[0].line() == f"subway_broadcast: {results[0].message}"
    assert sum(fake.requests.values()) == 0


# -- archives --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [False, True])
def test_zip_is_extracted_and_removed_unless_kept(fake, root, keep):
    fake.add_record(110, {"shards.zip": zip_of(SHARDS)})
    (result,) = run([Task("t", 110)], root, fake, keep_archives=keep)
    assert result.status == "downloaded", result.message
    folder = record_dir(110, root)
    for name, data in SHARDS.items():
        assert (folder / name).read_bytes() == data
    assert (folder / "shards.zip").exists() == keep
    marker = read_marker(folder, 110)
    assert marker is not None and marker["extracted"] == {"shards.zip": sorted(SHARDS)}
    assert not [p for p in folder.parent.iterdir() if ".extract-" in p.name]


def test_tar_gz_is_extracted_but_plain_tar_is_not(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in SHARDS.items():
            info = tarfile.TarInfo(f"sub/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    archive = tmp_path / "shards.tar.gz"
    archive.write_bytes(buf.getvalue())
    target = tmp_path / "out"
    files = safe_extract(archive, target)
    assert files == sorted(f"sub/{n}" for n in SHARDS)
    assert not archive.exists()
    assert (target / "sub" / "wds-audio-train-000000.tar").read_bytes() == SHARDS["wds-audio-train-000000.tar"]
    assert [is_archive(n) for n in ("a.zip", "a.tar.gz", "a.tgz", "a.tar.xz", "a.tar.bz2", "a.tar", "a.json")] == [
        True,
        True,
        True,
        True,
        True,
        False,
        False,
    ]


def test_zip_with_parent_member_is_refused_through_download(fake, root, tmp_path):
    fake.add_record(111, {"evil.zip": zip_of({"ok.tar": shard(3), "../evil.txt": b"pwned"})})
    (result,) = run([Task("t", 111)], root, fake)
    assert result.status == "error"
    assert isinstance(result.error, UnsafeArchiveError)
    assert "evil.zip" in result.message and "'../evil.txt'" in result.message
    assert not [p for p in tmp_path.rglob("evil.txt")]
    folder = record_dir(111, root)
    assert not (folder / "ok.tar").exists()  # nothing is moved into place from a refused archive
    assert not (folder / MARKER_NAME).exists()
    assert not [p for p in folder.parent.iterdir() if ".extract-" in p.name]


def _tar(path: Path, mode: str, add) -> Path:
    with tarfile.open(path, mode) as tf:
        add(tf)
    return path


def _tar_add_file(tf: tarfile.TarFile, name: str, data: bytes = b"data") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _tar_add_special(tf: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    _tar_add_file(tf, "fine.txt")
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    tf.addfile(info)


UNSAFE = {
    "zip-parent": (
        "a.zip",
        lambda p: p.write_bytes(zip_of({"fine.txt": b"x", "sub/../../up.txt": b"x"})),
        "sub/../../up.txt",
    ),
    "zip-absolute": ("a.zip", lambda p: p.write_bytes(zip_of({"/tmp/abs.txt": b"x"})), "/tmp/abs.txt"),
    "zip-backslash": ("a.zip", lambda p: p.write_bytes(zip_of({"..\\up.txt": b"x"})), "..\\up.txt"),
    "zip-symlink": ("a.zip", lambda p: p.write_bytes(zip_of({"fine.txt": b"x"}, {"link": "/etc/passwd"})), "link"),
    "tgz-symlink": (
        "a.tar.gz",
        lambda p: _tar(p, "w:gz", lambda tf: _tar_add_special(tf, "link", tarfile.SYMTYPE, "/etc/passwd")),
        "link",
    ),
    "tar-xz-hardlink": (
        "a.tar.xz",
        lambda p: _tar(p, "w:xz", lambda tf: _tar_add_special(tf, "hard", tarfile.LNKTYPE, "fine.txt")),
        "hard",
    ),
    "tgz-device": ("a.tgz", lambda p: _tar(p, "w:gz", lambda tf: _tar_add_special(tf, "dev", tarfile.CHRTYPE)), "dev"),
    "tgz-fifo": ("a.tgz", lambda p: _tar(p, "w:gz", lambda tf: _tar_add_special(tf, "fifo", tarfile.FIFOTYPE)), "fifo"),
    "tgz-parent": ("a.tgz", lambda p: _tar(p, "w:gz", lambda tf: _tar_add_file(tf, "../up.txt")), "../up.txt"),
    "tgz-absolute": ("a.tgz", lambda p: _tar(p, "w:gz", lambda tf: _tar_add_file(tf, "/abs.txt")), "/abs.txt"),
}
REASON = {
    "zip-parent": "'..' path component",
    "zip-absolute": "absolute path",
    "zip-backslash": "'..' path component",
    "zip-symlink": "symbolic link",
    "tgz-symlink": "symbolic link to '/etc/passwd'",
    "tar-xz-hardlink": "hard link to 'fine.txt'",
    "tgz-device": "device file",
    "tgz-fifo": "device file or FIFO",
    "tgz-parent": "'..' path component",
    "tgz-absolute": "absolute path",
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused(tmp_path, case):
    name, build, member = UNSAFE[case]
    work = tmp_path / "work"
    work.mkdir()
    archive = work / name
    build(archive)
    target = work / "out"
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, target)
    assert info.value.member == member and info.value.archive == str(archive)
    assert info.value.reason.startswith(REASON[case])
    assert str(archive) in str(info.value) and repr(member) in str(info.value)
    assert archive.exists()  # kept for inspection
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in work.iterdir()) == sorted([name, "out"])  # no temp folder, nothing outside
    assert not (tmp_path / "up.txt").exists()


def test_file_named_like_an_archive_that_is_not_one(tmp_path):
    bogus = tmp_path / "x.zip"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ArchiveError, match="not one"):
        safe_extract(bogus, tmp_path / "out")
    with pytest.raises(ArchiveError, match="not an archive"):
        safe_extract(tmp_path / "shard.tar", tmp_path / "out")


# -- offline ---------------------------------------------------------------------------------------------
def test_offline_makes_no_request_and_lists_missing_files(fake, root):
    fake.add_record(112, SHARDS)
    pins = {name: f"md5:{md5(data)}" for name, data in SHARDS.items()}
    pinned, unpinned = Task("pinned", 112, checksums=pins), Task("unpinned", 113)
    results = run([pinned, unpinned], root, fake, offline=True)
    assert sum(fake.requests.values()) == 0
    folder = record_dir(112, root)
    assert results[0].status == "missing" and not results[0].ok
    assert results[0].missing == [folder / name for name in sorted(SHARDS)]
    assert "pinned checksums" in results[0].message
    for name in SHARDS:
        assert str(folder / name) in results[0].line()
    assert results[1].status == "missing"
    assert "record 113 metadata not cached" in results[1].message
    assert str(record_dir(113, root)) in results[1].message


def test_offline_lists_files_from_cached_record_metadata(fake, root):
    fake.add_record(114, {"a.tar": blob(20), "b.tar": blob(21)})
    fake.corrupt["b.tar"] = 99
    (failed,) = run([Task("t", 114)], root, fake)
    assert failed.status == "error"
    n = sum(fake.requests.values())
    (offline,) = run([Task("t", 114)], root, fake, offline=True)
    assert sum(fake.requests.values()) == n
    assert offline.missing == [record_dir(114, root) / "b.tar"]
    assert "cached record metadata" in offline.message


# -- mirror ----------------------------------------------------------------------------------------------
def _mirror_record_json(record_id: int, files: dict[str, bytes]) -> dict:
    return {
        "id": record_id,
        "files": [{"key": n, "size": len(d), "checksum": f"md5:{md5(d)}"} for n, d in files.items()],
    }


def test_mirror_works_without_any_server(tmp_path, root, monkeypatch):
    monkeypatch.setenv("XBENCH_ZENODO_URL", "http://127.0.0.1:9")  # nothing listens there
    mirror = tmp_path / "mirror"
    files = {"shards.zip": zip_of(SHARDS), "extra.tar": shard(5)}
    (mirror / "201").mkdir(parents=True)
    (mirror / "202").mkdir(parents=True)
    for name, data in files.items():
        (mirror / "201" / name).write_bytes(data)
    (mirror / "201" / "record.json").write_text(json.dumps(_mirror_record_json(201, files)))
    (mirror / "202" / "a.tar").write_bytes(blob(30))  # no record.json: files listed from the folder
    tasks = [Task("with_json", 201), Task("listed", 202, checksums={"a.tar": f"md5:{md5(blob(30))}"})]
    results = run(tasks, root, mirror=mirror, offline=True)
    assert [r.status for r in results] == ["downloaded", "downloaded"], [r.message for r in results]
    folder = record_dir(201, root)
    assert (folder / "extra.tar").read_bytes() == files["extra.tar"]
    for name, data in SHARDS.items():
        assert (folder / name).read_bytes() == data
    assert not (folder / "shards.zip").exists()
    assert (record_dir(202, root) / "a.tar").read_bytes() == blob(30)
    assert read_marker(folder, 201)["source"] == str(mirror / "201")


def test_mirror_file_is_verified(tmp_path, root):
    mirror = tmp_path / "mirror"
    (mirror / "203").mkdir(parents=True)
    good = blob(31)
    (mirror / "203" / "a.tar").write_bytes(good[:-1] + b"\x00")
    (mirror / "203" / "record.json").write_text(json.dumps(_mirror_record_json(203, {"a.tar": good})))
    (result,) = run([Task("t", 203)], root, mirror=mirror)
    assert result.status == "error" and isinstance(result.error, IntegrityError)
    assert result.error.name == "a.tar" and result.error.expected == md5(good)
    assert not (record_dir(203, root) / "a.tar").exists()


# -- pinned checksums ------------------------------------------------------------------------------------
def test_pinned_checksum_mismatch_is_an_error_naming_the_file(fake, root):
    fake.add_record(115, {"a.tar": blob(40), "b.tar": blob(41)})
    wrong = Task("t", 115, checksums={"b.tar": "md5:" + "0" * 32})
    (result,) = run([wrong], root, fake)
    assert result.status == "error" and isinstance(result.error, PinnedChecksumError)
    assert "'b.tar'" in result.message and "0" * 32 in result.message and md5(blob(41)) in result.message
    assert fake.file_requests() == 0  # checked before any transfer

    absent = Task("t", 115, checksums={"c.tar": f"md5:{md5(blob(41))}"})
    (result,) = run([absent], root, fake)
    assert isinstance(result.error, PinnedChecksumError) and "'c.tar'" in result.message

    right = Task("t", 115, checksums={"b.tar": f"MD5:{md5(blob(41)).upper()}"})
    (result,) = run([right], root, fake)
    assert result.status == "downloaded", result.message


def test_tasks_sharing_a_record_must_agree_on_pins(fake, root):
    fake.add_record(116, {"a.tar": blob(42)})
    tasks = [Task("x", 116, checksums={"a.tar": md5(blob(42))}), Task("y", 116, checksums={"a.tar": "1" * 32})]
    results = run(tasks, root, fake)
    assert [r.status for r in results] == ["error", "error"]
    assert "task x" in results[0].message and "task y" in results[0].message
    assert sum(fake.requests.values()) == 0


# -- the .complete marker --------------------------------------------------------------------------------
class Crash(BaseException):
    """Stands for the process dying (not an error the downloader could catch)."""


def test_marker_is_written_last_and_a_crash_before_it_leaves_the_task_not_downloaded(fake, root, monkeypatch):
    fake.add_record(117, {"shards.zip": zip_of(SHARDS), "extra.tar": shard(6)})
    folder = record_dir(117, root)
    seen: dict[str, object] = {}
    real_write = download_mod._write_marker

    def crash(where: Path, data: Mapping) -> None:
        seen["extracted"] = sorted(p.name for p in where.iterdir() if p.name.startswith("wds-audio"))
        seen["parts"] = sorted(p.name for p in where.glob("*.part"))
        seen["zip"] = (where / "shards.zip").exists()
        raise Crash

    monkeypatch.setattr(download_mod, "_write_marker", crash)
    with pytest.raises(Crash):
        run([Task("t", 117)], root, fake)
    assert seen == {"extracted": sorted(SHARDS), "parts": [], "zip": True}
    assert not is_downloaded(Task("t", 117), root)
    assert not (folder / MARKER_NAME).exists()
    (offline,) = run([Task("t", 117)], root, fake, offline=True)
    assert offline.status == "incomplete" and not offline.ok

    monkeypatch.setattr(download_mod, "_write_marker", real_write)
    transfers = fake.file_requests()
    (result,) = run([Task("t", 117)], root, fake)
    assert result.status == "downloaded", result.message
    assert fake.file_requests() == transfers  # verified files in place are not fetched again
    assert is_downloaded(Task("t", 117), root)
    assert not (folder / "shards.zip").exists()


# -- client details --------------------------------------------------------------------------------------
def test_parse_record_reads_legacy_and_rdm_forms():
    legacy = {
        "files": [{"filename": "a.zip", "filesize": 3, "checksum": "md5:" + "a" * 32, "links": {"download": "/x"}}]
    }
    rec = parse_record(legacy, 5, "http://h:1/")
    assert (rec.files[0].name, rec.files[0].size, rec.files[0].md5, rec.files[0].url) == (
        "a.zip",
        3,
        "a" * 32,
        "http://h:1/x",
    )
    rdm = {"files": {"enabled": True, "entries": {"b.tar": {"key": "b.tar", "size": 4, "checksum": "md5:" + "b" * 32}}}}
    rec = parse_record(rdm, 6, "http://h:1")
    assert rec.files[0].url == "http://h:1/api/records/6/files/b.tar/content"
    with pytest.raises(ZenodoError, match="plain file name"):
        parse_record({"files": [{"key": "../x", "size": 1}]}, 7)


def test_base_url_override(monkeypatch):
    monkeypatch.delenv("XBENCH_ZENODO_URL", raising=False)
    assert resolve_base_url() == "https://zenodo.org"
    monkeypatch.setenv("XBENCH_ZENODO_URL", "http://127.0.0.1:5/")
    assert resolve_base_url() == "http://127.0.0.1:5"
    assert resolve_base_url("http://other") == "http://other"


# -- command line ----------------------------------------------------------------------------------------
def test_download_command(fake, root, tmp_path, monkeypatch, capsys):
    registry = types.ModuleType("xbench.taskspec.registry")
    seen_dirs = []

    def get_task(name: str, tasks_dir: str | None = None) -> Task:
        seen_dirs.append(tasks_dir)
        if name != "esc50":
            raise KeyError(f"unknown task {name!r}")
        return Task("esc50", 118)

    registry.get_task = get_task  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "xbench.taskspec.registry", registry)
    assert main(["download", "esc50", "--data-root", str(root), "--offline", "--tasks-dir", "T"]) == 1
    out = capsys.readouterr().out
    assert "esc50: missing" in out and str(record_dir(118, root)) in out
    assert seen_dirs == ["T"]

    fake.add_record(118, {"a.tar": blob(50)})
    monkeypatch.setenv("XBENCH_ZENODO_URL", fake.url)
    assert main(["download", "esc50", "--data-root", str(root), "--keep-archives"]) == 0
    assert "esc50: downloaded" in capsys.readouterr().out

    assert main(["download", "nope", "--data-root", str(root)]) == 2
    assert "unknown task" in capsys.readouterr().err


def test_file_in_place_that_fails_verification_is_fetched_again(fake, root):
    fake.add_record(119, {"a.tar": blob(60), "b.tar": blob(61)})
    (first,) = run([Task("t", 119)], root, fake)
    assert first.status == "downloaded", first.message
    folder = record_dir(119, root)
    (folder / MARKER_NAME).unlink()
    (folder / "a.tar").write_bytes(b"damaged")
    (second,) = run([Task("t", 119)], root, fake)
    assert second.status == "downloaded", second.message
    assert fake.requests[fake.file_path(119, "a.tar")] == 2
    assert fake.requests[fake.file_path(119, "b.tar")] == 1
    assert (folder / "a.tar").read_bytes() == blob(60)


def test_unresolvable_host_fails_at_once():
    with pytest.raises(ZenodoError, match="cannot resolve zenodo.invalid"):
        fetch_record(1, "http://zenodo.invalid", retries=5, backoff=10.0)


# -- verification after download ---------------------------------------------------------------------------
def _flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_verify_rechecks_every_file_and_extracted_member_against_the_marker(fake, root):
    fake.add_record(120, {"shards.zip": zip_of(SHARDS), "extra.tar": shard(9)})
    (first,) = run([Task("t", 120)], root, fake)
    assert first.status == "downloaded", first.message
    folder = record_dir(120, root)
    marker = read_marker(folder, 120)
    assert marker["members"] == {name: f"md5:{md5(data)}" for name, data in SHARDS.items()}
    requests = sum(fake.requests.values())
    (ok,) = run([Task("t", 120)], root, verify=True)
    assert (ok.status, ok.ok, ok.corrupt, ok.missing) == ("verified", True, [], [])
    assert "3 file(s) verified" in ok.message  # extra.tar and the two members of the deleted zip

    _flip_byte(folder / "wds-audio-test-000000.tar")  # inside an extracted member (its archive is gone)
    _flip_byte(folder / "extra.tar", 700)  # inside a plain shard, within a clip's audio
    (bad,) = run([Task("t", 120)], root, verify=True)
    assert bad.status == "corrupt" and not bad.ok
    assert [line.split(":")[0] for line in bad.corrupt] == [
        str(folder / "extra.tar"),
        str(folder / "wds-audio-test-000000.tar"),
    ]
    assert f"recorded at download md5:{md5(shard(9))}" in bad.corrupt[0]
    (folder / "wds-audio-train-000000.tar").unlink()
    (gone,) = run([Task("t", 120)], root, verify=True)
    assert gone.missing == [folder / "wds-audio-train-000000.tar"] and len(gone.corrupt) == 2
    assert sum(fake.requests.values()) == requests  # verification fetches nothing
    assert "corrupt " in gone.line() and "missing " in gone.line()


def test_verify_of_a_record_not_downloaded_is_not_ok(root):
    (result,) = run([Task("t", 121)], root, verify=True)
    assert result.status == "missing" and not result.ok and "no .complete marker" in result.message


def test_verify_of_a_task_without_a_record_checks_its_declared_checksums(tmp_path, root):
    folder = tmp_path / "shards"  # placed by hand, as the offline suite's and users' tasks are
    folder.mkdir()
    (folder / "a.tar").write_bytes(shard(20))
    (folder / "b.tar").write_bytes(shard(21))
    pins = {"a.tar": f"sha256:{hashlib.sha256(shard(20)).hexdigest()}", "b.tar": f"md5:{md5(shard(21))}"}
    tasks = [Task("local", checksums=pins, data_dir=str(folder)), Task("hidden", None, True, pins, str(folder))]
    results = run([*tasks, Task("bare", data_dir=str(folder))], root, verify=True)
    assert [(r.status, r.ok, r.corrupt, r.missing) for r in results] == [
        ("verified", True, [], []),
        ("verified", True, [], []),
        ("local", True, [], []),  # no record and no checksums: nothing to check
    ]
    assert results[0].message == f"2 file(s) verified against the declaration's checksums in {folder}"

    _flip_byte(folder / "a.tar", 700)
    _flip_byte(folder / "b.tar", 700)
    (bad,) = run(tasks[:1], root, verify=True)
    assert (bad.status, bad.ok, bad.missing) == ("corrupt", False, [])
    a, b = folder / "a.tar", folder / "b.tar"
    assert bad.corrupt == [
        f"{a}: sha256:{hashlib.sha256(a.read_bytes()).hexdigest()}, declared {pins['a.tar']}",
        f"{b}: md5:{md5(b.read_bytes())}, declared {pins['b.tar']}",
    ]
    b.unlink()
    (gone,) = run(tasks[:1], root, verify=True)
    assert gone.missing == [b] and len(gone.corrupt) == 1 and not gone.ok
    assert gone.message == f"1 changed and 1 missing of the 2 files the declaration's checksums name in {folder}"
    (plain,) = run(tasks[:1], root)  # without verify a task without a record is still placed by hand
    assert plain.status == "local"


def test_download_verify_command(fake, root, monkeypatch, capsys):
    registry = types.ModuleType("xbench.taskspec.registry")
    registry.get_task = lambda name, tasks_dir=None: Task("esc50", 122)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "xbench.taskspec.registry", registry)
    fake.add_record(122, {"a.tar": shard(11)})
    monkeypatch.setenv("XBENCH_ZENODO_URL", fake.url)
    assert main(["download", "esc50", "--data-root", str(root)]) == 0
    capsys.readouterr()
    assert main(["download", "esc50", "--data-root", str(root), "--verify"]) == 0
    assert "esc50: verified" in capsys.readouterr().out
    _flip_byte(record_dir(122, root) / "a.tar")
    assert main(["download", "esc50", "--data-root", str(root), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "esc50: corrupt" in out and f"corrupt {record_dir(122, root) / 'a.tar'}: md5:" in out


def test_two_downloads_of_one_record_at_once_fetch_each_file_once(fake, root):
    fake.add_record(123, {"a.tar": blob(70, 1 << 20), "b.tar": blob(71, 1 << 20)})
    fake.cut_after["a.tar"] = (1 << 19, 1)  # a transfer broken half-way, resumed from its .part
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(run([Task("t", 123)], root, fake)[0])) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == ["downloaded", "present"]
    assert fake.requests[fake.file_path(123, "b.tar")] == 1
    assert fake.requests[fake.file_path(123, "a.tar")] == 2  # the cut transfer and its resumption, by one process
    folder = record_dir(123, root)
    assert (folder / "a.tar").read_bytes() == blob(70, 1 << 20)
    assert not list(folder.glob("*.part")) and not (folder / download_mod.CLAIM_NAME).exists()
