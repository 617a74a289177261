"""Write X-ARES-format audio shards: plain POSIX tars of ``<key>.<ext>`` + ``<key>.json`` members.

The layout follows X-ARES's ``write_audio_tar`` (keys with ``.`` replaced by ``_``, a string label
wrapped as ``{"label": ...}``, a dict dumped as is), but the output is deterministic: fixed member
mtime/uid/gid/owner/mode, so rebuilding from the same items gives byte-identical shards. Each shard is
written under a temporary name in the output folder and renamed into place when complete.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from xbench.core.atomic_io import temp_path

__all__ = ["AudioInput", "encode_audio", "sanitize_key", "shard_name", "write_audio_shards"]

#: Audio for one item: the file's bytes (container sniffed from its header), ``(bytes, ext)``, or
#: ``(samples, sample_rate)`` with ``samples`` a numpy array ``[N]`` or ``[N, C]`` (soundfile's layout).
AudioInput = bytes | tuple[bytes, str] | tuple[np.ndarray, int]

_MTIME = 0
_MODE = 0o444
_OWNER = "xbench"
_ENCODE_FORMATS = {"wav": "WAV", "flac": "FLAC"}


def sanitize_key(key: str) -> str:
    """X-ARES's key rule: ``.`` becomes ``_`` (a WebDataset key ends at the first dot of the file name)."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"a sample key must be a non-empty string, got {key!r}")
    out = key.replace(".", "_")
    if out.startswith("/") or "\x00" in out or out.endswith("/"):
        raise ValueError(f"unusable sample key {key!r}: it must not start or end with '/' or contain NUL")
    return out


def shard_name(pattern: str, index: int) -> str:
    """Shard file name: ``%``-format (``train-%06d.tar``) or X-ARES's ``*`` (-> 6 digits, ``train-000000.tar``)."""
    if "*" in pattern:
        return pattern.replace("*", f"{index:06d}")
    if "%" in pattern:
        return pattern % index
    raise ValueError(f"shard pattern {pattern!r} needs a '*' or a %-format field for the shard number")


def _sniff_ext(data: bytes) -> str:
    head = data[:12]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    raise ValueError("cannot tell the audio format from the bytes' header; pass (bytes, ext) instead")


def encode_audio(samples: np.ndarray, sample_rate: int, fmt: str = "wav", subtype: str | None = "PCM_16") -> bytes:
    """Encode ``samples`` (``[N]`` or ``[N, C]``) as wav or flac bytes with soundfile."""
    if fmt not in _ENCODE_FORMATS:
        raise ValueError(f"can encode arrays as {sorted(_ENCODE_FORMATS)} only, got {fmt!r}")
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2):
        raise ValueError(f"audio samples must be [N] or [N, C], got shape {samples.shape}")
    buf = io.BytesIO()
    sf.write(buf, samples, int(sample_rate), format=_ENCODE_FORMATS[fmt], subtype=subtype)
    return buf.getvalue()


def _audio_bytes(audio: Any, fmt: str, subtype: str | None) -> tuple[bytes, str]:
    if isinstance(audio, (bytes, bytearray, memoryview)):
        data = bytes(audio)
        return data, _sniff_ext(data)
    if isinstance(audio, tuple) and len(audio) == 2:
        first, second = audio
        if isinstance(first, (bytes, bytearray, memoryview)) and isinstance(second, str):
            return bytes(first), second.lower().lstrip(".")
        if isinstance(first, np.ndarray) and isinstance(second, (int, np.integer)):
            return encode_audio(first, int(second), fmt, subtype), fmt
    raise TypeError("audio must be bytes, (bytes, ext) or (numpy array, sample_rate)")


def _meta_bytes(meta: Any) -> bytes:
    if isinstance(meta, str):
        meta = {"label": meta}
    if not isinstance(meta, (dict, list)):
        raise TypeError(f"meta must be a dict, a list or a str label, got {type(meta).__name__}")
    return json.dumps(meta).encode("utf-8")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = _MTIME
    info.mode = _MODE
    info.uid = info.gid = 0
    info.uname = info.gname = _OWNER
    tar.addfile(info, io.BytesIO(data))


class _ShardFile:
    """One shard being written under a temporary name; ``commit`` renames it into place."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.tmp = temp_path(final)
        self.tar = tarfile.open(self.tmp, "w", format=tarfile.PAX_FORMAT)

    def commit(self) -> Path:
        self.tar.close()
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        self.tar.close()
        self.tmp.unlink(missing_ok=True)


def write_audio_shards(
    out_dir: str | os.PathLike[str],
    pattern: str,
    items: Iterable[tuple[str, AudioInput, Any]],
    maxcount: int,
    *,
    audio_format: str = "wav",
    subtype: str | None = "PCM_16",
) -> list[Path]:
    """Write ``items`` — ``(key, audio, meta)`` — as X-ARES audio shards of at most ``maxcount`` samples.

    ``audio`` is an :data:`AudioInput`; arrays are encoded as ``audio_format`` (wav or flac) with
    ``subtype``. ``meta`` (dict, list, or a str label stored as ``{"label": ...}``) becomes
    ``<key>.json``. Shards are named by ``pattern`` (see :func:`shard_name`) inside ``out_dir`` and
    replace files of the same name; returns their paths in order. Deterministic: equal items give
    byte-identical shards. Raises ``ValueError`` for two items with the same (sanitized) key.
    """
    if maxcount < 1:
        raise ValueError(f"maxcount must be >= 1, got {maxcount}")
    if "/" in pattern or os.sep in pattern:
        raise ValueError(f"shard pattern {pattern!r} must be a file name; put folders in out_dir")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    seen: dict[str, str] = {}
    current: _ShardFile | None = None
    count = 0
    try:
        for item in items:
            key, audio, meta = item
            skey = sanitize_key(key)
            if skey in seen:
                raise ValueError(f"duplicate sample key {skey!r} (from {seen[skey]!r} and {key!r})")
            seen[skey] = key
            data, ext = _audio_bytes(audio, audio_format, subtype)
            if ext == "json" or not ext.isalnum():
                raise ValueError(f"bad audio extension {ext!r} for key {key!r}")
            meta_data = _meta_bytes(meta)
            if current is None:
                current = _ShardFile(out / shard_name(pattern, len(written)))
                count = 0
            _add(current.tar, f"{skey}.{ext}", data)
            _add(current.tar, f"{skey}.json", meta_data)
            count += 1
            if count >= maxcount:
                written.append(current.commit())
                current = None
        if current is not None:
            written.append(current.commit())
            current = None
    except BaseException:
        if current is not None:
            current.abort()
        raise
    return written
