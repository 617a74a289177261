"""WebDataset as an oracle for xbench's shard format: both readers see the same samples in the same shards.

Shards come from xbench's writer (keys with dots, folders and non-ASCII characters; wav, flac, ogg, opus,
mp3 and a raw ``(bytes, ext)`` payload; dict, list and str metadata; several shards) and, for what that
writer never produces, from a hand-made tar: multi-dot extensions, ``.txt``/``.cls`` fields, upper-case
extensions, a sample whose key is ``__key__``, WebDataset metadata members and directories. xbench
(:func:`xbench.data.shards.iter_samples`) and WebDataset's own tar pipeline
(``webdataset.tariterators.tarfile_samples``: ``base_plus_ext`` keys, lower-cased extensions, ``__...__``
metadata skipped) must agree on every key and every field's bytes. webdataset is a dev dependency only: the
harness and the zoo never import it.
"""

import ast
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf

from xbench.data.shards import iter_samples
from xbench.data.writer import encode_audio, write_audio_shards

from conftest import require_oracle

ROOT = Path(__file__).resolve().parents[2]
WDS_FIELDS = {"__key__", "__url__", "__local_path__"}


def _encoded(samples: np.ndarray, sr: int, fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def _tone(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 0.2 * np.sin(np.arange(n) / 7.0) + 0.01 * rng.standard_normal(n)
    return np.stack([x * (c + 1) / channels for c in range(channels)], 1).astype(np.float32) if channels > 1 else x


def _by_xbench(shards: list[Path]) -> list[tuple[str, dict[str, bytes]]]:
    return [(s.key, s.members) for shard in shards for s in iter_samples(shard)]


def _by_webdataset(shards: list[Path]) -> list[tuple[str, dict[str, bytes]]]:
    samples = require_oracle("webdataset.tariterators").tarfile_samples([{"url": str(p)} for p in shards])
    return [(s["__key__"], {k: v for k, v in s.items() if k not in WDS_FIELDS}) for s in samples]


def test_writer_shards_read_the_same_by_webdataset_and_xbench(tmp_path):
    m4a_like = b"\x00\x00\x00\x18ftypM4A " + bytes(range(256)) * 4  # carried as opaque bytes, never decoded
    items = [
        ("clip.with.dots", (_tone(8000), 16000), {"label": "dog", "onset": 0.25}),
        ("folder.v2/sub dir/take.1", (_tone(4410, channels=2), 44100), ["a", {"b": 1}]),
        ("Café-ü", (_encoded(_tone(4000, seed=1), 16000, "FLAC", "PCM_24"), "flac"), "label-str"),
        ("vorbis", _encoded(_tone(16000, seed=2), 16000, "OGG", "VORBIS"), {"x": []}),  # sniffed as ogg
        ("opus", _encoded(_tone(9600, seed=3), 48000, "OGG", "OPUS"), {"x": "opus"}),
        ("mpeg", _encoded(_tone(16000, seed=4), 16000, "MP3", "MPEG_LAYER_III"), {"x": "mp3"}),  # sniffed as mp3
        ("UPPER", (m4a_like, "M4A"), {"y": "Ünïcode ✓"}),
    ]
    shards = write_audio_shards(tmp_path, "oracle-%06d.tar", items, maxcount=3)
    assert [p.name for p in shards] == ["oracle-000000.tar", "oracle-000001.tar", "oracle-000002.tar"]

    ours, theirs = _by_xbench(shards), _by_webdataset(shards)
    assert ours == theirs
    assert [k for k, _ in ours] == [
        "clip_with_dots",
        "folder_v2/sub dir/take_1",
        "Café-ü",
        "vorbis",
        "opus",
        "mpeg",
        "UPPER",
    ]
    assert [sorted(fields) for _, fields in ours] == [
        ["json", "wav"],
        ["json", "wav"],
        ["flac", "json"],
        ["json", "ogg"],
        ["json", "ogg"],
        ["json", "mp3"],
        ["json", "m4a"],
    ]
    fields = dict(ours)
    assert fields["UPPER"]["m4a"] == m4a_like
    assert fields["Café-ü"]["flac"] == items[2][1][0]
    assert json.loads(fields["Café-ü"]["json"]) == {"label": "label-str"}
    assert json.loads(fields["folder_v2/sub dir/take_1"]["json"]) == ["a", {"b": 1}]
    assert fields["clip_with_dots"]["wav"] == encode_audio(_tone(8000), 16000)
    wave, sr = sf.read(io.BytesIO(fields["folder_v2/sub dir/take_1"]["wav"]), dtype="float32")
    assert sr == 44100 and wave.shape == (4410, 2)


def _tar(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    """A tar of (name, bytes) files in this order; ``None`` bytes make a directory."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_foreign_layouts_read_the_same_by_webdataset_and_xbench(tmp_path):
    wav = encode_audio(_tone(1600), 16000)
    flac = encode_audio(_tone(1600, seed=5), 16000, "flac")
    shard = _tar(
        tmp_path / "foreign-000000.tar",
        [
            ("__meta__", b"{}"),  # WebDataset metadata at the top level: skipped
            ("__index__/offsets.txt", b"0 1 2"),  # inside a metadata folder: skipped
            ("a.seg1.wav", wav),  # multi-dot extensions stay one field name
            ("a.seg1.json", b'{"seg": 1}'),
            ("a.txt", b"transcript one"),
            ("a.cls", b"3"),
            ("data", None),  # a directory: skipped
            ("data/b.tar.gz.flac", flac),
            ("data/b.JSON", b'{"upper": true}'),  # extensions are lower-cased
            ("data/b.Txt", "ünï\n".encode()),
            ("noext", b"no extension: no sample"),
            ("__key__.json", b'{"meta-like": "but a sample"}'),  # not __...__ alone: a sample keyed __key__
            ("__key__.txt", b"x"),
            ("c.d.e/f.g.WAV", wav),  # dots in folders belong to the key, the extension starts in the name
        ],
    )
    ours, theirs = _by_xbench([shard]), _by_webdataset([shard])
    assert ours == theirs
    assert ours == [
        ("a", {"seg1.wav": wav, "seg1.json": b'{"seg": 1}', "txt": b"transcript one", "cls": b"3"}),
        ("data/b", {"tar.gz.flac": flac, "json": b'{"upper": true}', "txt": "ünï\n".encode()}),
        ("__key__", {"json": b'{"meta-like": "but a sample"}', "txt": b"x"}),
        ("c.d.e/f", {"g.wav": wav}),
    ]


def test_harness_and_zoo_never_import_webdataset():
    found = []
    for folder in ("xbench", "encoders"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "webdataset"]
    assert found == []
