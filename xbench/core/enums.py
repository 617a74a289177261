"""The closed sets of option values, one spelling each, shared by the command line and the Python API.

Each set is a ``str`` :class:`enum.Enum`, so a member equals its string (``Track.MLP == "mlp"``); results,
caches and JSON keep plain strings. The task types are not here: they live in
:data:`xbench.taskspec.config.TASK_TYPES`, where declarations are validated. This module imports only the
standard library, so the parser of ``xbench --help`` can use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

__all__ = [
    "CacheDtype",
    "Choice",
    "Overwrite",
    "Precision",
    "Protocol",
    "PublishedTable",
    "Stage",
    "Track",
    "choice",
    "choices",
    "parse_tracks",
]


class Choice(str, Enum):
    """A closed set of spellings; ``str()`` and formatting give the spelling (as ``enum.StrEnum``, 3.11+)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Protocol(Choice):
    """Scoring protocol: ``xbench`` (one unit per shard, no cross-clip padding) or ``xares`` (X-ARES 0.1.3)."""

    XBENCH = "xbench"
    XARES = "xares"


class Track(Choice):
    """Evaluation track: a trained ``mlp`` probe or the training-free ``knn``."""

    MLP = "mlp"
    KNN = "knn"


class Overwrite(Choice):
    """What a run does with a saved result: keep it always (``never``), reuse it when its settings match
    (``missing``), or recompute it (``always``)."""

    NEVER = "never"
    MISSING = "missing"
    ALWAYS = "always"


class CacheDtype(Choice):
    """The floating-point type of cached frames."""

    FLOAT16 = "float16"
    FLOAT32 = "float32"


class Stage(Choice):
    """What a run does: ``embed`` the audio into the cache (needs the encoder), ``score`` from the cache alone,
    or ``all`` (both)."""

    ALL = "all"
    EMBED = "embed"
    SCORE = "score"


class Precision(Choice):
    """The encoder forward pass: ``fp32`` as built, or under ``torch.autocast`` in ``bf16`` or ``fp16``."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class PublishedTable(Choice):
    """X-ARES's published table: as its README averaged it, or with the newer v0.1.3 LibriSpeech values."""

    README = "readme"
    V0_1_3 = "v0.1.3"


def choices(kind: type[Choice]) -> tuple[str, ...]:
    """The spellings of ``kind``, in declaration order (for ``argparse`` ``choices=``)."""
    return tuple(member.value for member in kind)


def choice(kind: type[Choice], value: object, what: str) -> str:
    """``value`` as the plain string of a ``kind`` member; ``ValueError`` naming ``what`` and the choices."""
    if isinstance(value, str) and value in choices(kind):
        return str(kind(value).value)
    raise ValueError(f"{what} must be one of {', '.join(choices(kind))}; got {value!r}")


def parse_tracks(value: str | Iterable[str]) -> tuple[str, ...]:
    """Tracks from ``"mlp,knn"`` or an iterable of names: each checked, repeats dropped, order kept."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [item.strip() if isinstance(item, str) else item for item in items]
    tracks = tuple(dict.fromkeys(choice(Track, name, "track") for name in names if name != ""))
    if not tracks:
        raise ValueError(f"give at least one track ({', '.join(choices(Track))})")
    return tracks
