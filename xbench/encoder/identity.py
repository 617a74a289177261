"""What makes two encoders "the same" for caching: class, source, weights, attributes, options.

Caches and results are keyed by :func:`encoder_fingerprint`, never by a class name alone: a changed
checkpoint, a changed encoder file, a changed local module it imports or changed harness options all give
a new key.

Taking the identity means building the encoder and hashing its weights. :class:`IdentityCache` keeps the
identity of an encoder named by a file, zoo name or ``module:Name`` against the files its building read
(:func:`recording_reads`): the encoder's source and local modules, its weight files and every other file
opened for reading meanwhile, each by path, size, mtime and a sha256 taken once. While every one of them is
unchanged, a rerun knows the identity (so its cache keys and result paths) without building the encoder.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import os
import re
import stat
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch

from xbench.core.atomic_io import atomic_write_json, sha256_file
from xbench.encoder.local_imports import scan_imports

IDENTITY_CACHE_FORMAT = 1


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # source files: small


def source_files(cls: type) -> list[Path]:
    """The file defining ``cls`` and every local module it imports (see :func:`source_digests`); ``[]`` without
    a source file."""
    try:
        path = inspect.getsourcefile(cls)
    except (OSError, TypeError):
        return []
    if not path or not Path(path).is_file():
        return []
    return [Path(path), *scan_imports(path).local_files]


def source_digests(cls: type) -> tuple[str, dict[str, str]]:
    """sha256 of the file defining ``cls`` and of every local module it imports (path relative to its folder).

    The local modules are those ``xbench package`` bundles (:func:`xbench.encoder.local_imports.scan_imports`):
    an edited helper module changes the key, a file the encoder does not import does not.
    ``("unknown", {})`` when the class has no source file.
    """
    try:
        path = inspect.getsourcefile(cls)
        if not path:
            return "unknown", {}
        own = _file_digest(Path(path))
    except (OSError, TypeError):
        return "unknown", {}
    scan = scan_imports(path)
    local = {p.relative_to(scan.root).as_posix(): _file_digest(p) for p in scan.local_files}
    return own, local


def state_digest(module: torch.nn.Module) -> str:
    """sha256 over every parameter and persistent buffer: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


IDENTITY_SETTINGS = "identity_settings"
"""Optional encoder attribute: a JSON-safe dict of settings that change its output but not its weights or source
(the zoo's transformers encoders: hidden-state layer, hub commit, config digest), recorded as ``settings``."""


def encoder_identity(encoder: torch.nn.Module, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-safe description of the encoder that produced an embedding."""
    cls = type(encoder)
    # a class loaded from a file lives in a module named after the file's path: keep it path-free
    module = "<file>" if cls.__module__.startswith("xbench_user_") else cls.__module__
    source, local_sources = source_digests(cls)
    # what an encoder's weights and source do not show (a hidden-state choice, a hub commit): its own dict
    settings = getattr(encoder, IDENTITY_SETTINGS, None)
    return {
        "class": f"{module}.{cls.__qualname__}",
        "source_sha256": source,
        "local_sources_sha256": local_sources,
        "state_sha256": state_digest(encoder),
        "sampling_rate": int(encoder.sampling_rate),
        "output_dim": int(encoder.output_dim),
        "hop_size_in_ms": float(encoder.hop_size_in_ms),
        "options": options or {},
        **({"settings": json.loads(json.dumps(settings))} if settings else {}),
    }


def encoder_fingerprint(identity: dict[str, Any]) -> str:
    """sha256 (hex) of an :func:`encoder_identity` record."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def encoder_slug(encoder: torch.nn.Module | dict[str, Any], fingerprint: str) -> str:
    """A readable, unique folder name: ``<ClassName>-<first 16 hex of the fingerprint>``; ``encoder`` is the
    instance or its :func:`encoder_identity` record."""
    cls = encoder["class"].rsplit(".", 1)[-1] if isinstance(encoder, dict) else type(encoder).__name__
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", cls)
    return f"{name}-{fingerprint[:16]}"


# --------------------------------------------------------------------------------------------------
# The identity cache
# --------------------------------------------------------------------------------------------------

_RECORDERS: list[set[str]] = []
_RECORD_LOCK = threading.Lock()
_HOOKED = False
_SKIP_PREFIXES = ("/proc/", "/sys/", "/dev/")
MAX_SIBLINGS = 256  # a folder with more entries is not a model folder: its other files are not stamped


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """``sys.addaudithook`` hook: while a recorder is active, note every file opened for reading."""
    if not _RECORDERS or event != "open":
        return
    path, mode, flags = args
    if isinstance(path, int) or path is None:
        return
    reading = ("r" in mode or "+" in mode) if isinstance(mode, str) else (flags or 0) & os.O_ACCMODE != os.O_WRONLY
    if reading:
        name = os.fsdecode(path)
        for found in _RECORDERS:
            found.add(name)


@contextmanager
def _recording_safetensors(found: set[str]) -> Iterator[None]:
    """Note the files ``safetensors`` opens (natively, past Python's ``open``) through ``safe_open``."""
    try:
        import safetensors
        import safetensors.torch as st
    except ImportError:
        yield
        return
    real = safetensors.safe_open

    def safe_open(filename: Any, *args: Any, **kwargs: Any) -> Any:
        found.add(os.fsdecode(filename))
        return real(filename, *args, **kwargs)

    with ExitStack() as stack:
        for owner in (safetensors, st):
            if getattr(owner, "safe_open", None) is real:
                owner.safe_open = safe_open
                stack.callback(setattr, owner, "safe_open", real)
        yield


@contextmanager
def recording_reads() -> Iterator[set[str]]:
    """Collect the paths of the files this process opens for reading inside the block: through Python
    (``open``, ``io.open_code``, ``os.open``: an audit hook, e.g. ``torch.load`` and imports) and through
    ``safetensors.safe_open``. Files opened by other native code without either are not seen."""
    global _HOOKED
    with _RECORD_LOCK:
        if not _HOOKED:
            sys.addaudithook(_audit)  # hooks cannot be removed: it does nothing while no recorder is active
            _HOOKED = True
    found: set[str] = set()
    _RECORDERS.append(found)
    try:
        with _recording_safetensors(found):
            yield found
    finally:
        _RECORDERS.remove(found)


def _regular(path: Path) -> os.stat_result | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:  # unreadable: judged by size and mtime alone
        return None


def stamp_files(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """``{path, size, mtime_ns, sha256}`` of each regular file of ``paths``; and ``{path, size, mtime_ns}`` of
    every regular file beside a read file that is not Python source, in a folder of at most
    :data:`MAX_SIBLINGS` entries (the weights a loader opened natively next to the ``config.json`` it read).
    Bytecode caches and ``/proc``-like files are left out."""
    read: dict[str, os.stat_result] = {}
    near: dict[str, os.stat_result] = {}
    for raw in paths:
        path = Path(raw).absolute()
        text = str(path)
        if text.startswith(_SKIP_PREFIXES) or "__pycache__" in path.parts or (st := _regular(path)) is None:
            continue
        read[text] = st
        if path.suffix not in (".py", ".pyi", ".pth", ".so"):
            siblings = list(itertools.islice(path.parent.iterdir(), MAX_SIBLINGS + 1))
            for sibling in siblings if len(siblings) <= MAX_SIBLINGS else []:
                if (found := _regular(sibling)) is not None:
                    near[str(sibling.absolute())] = found
    stamps = {p: {"path": p, "size": st.st_size, "mtime_ns": st.st_mtime_ns} for p, st in near.items()}
    for p, st in read.items():
        stamps[p] = {"path": p, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(Path(p))}
    return [stamps[p] for p in sorted(stamps)]


def _unchanged(stamp: dict[str, Any]) -> bool:
    """True when the file still has the stamped size and mtime, or else still the stamped sha256 (when it has one)."""
    st = _regular(Path(stamp["path"]))
    if st is None or st.st_size != stamp["size"]:
        return False
    if st.st_mtime_ns == stamp["mtime_ns"]:
        return True
    return stamp.get("sha256") is not None and _sha256(Path(stamp["path"])) == stamp["sha256"]


class IdentityCache:
    """Encoder identities by a key (how the encoder is named and called), each valid while the files its
    building read are unchanged; one JSON file per key under ``<cache root>/identity/``."""

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / "identity"

    def path(self, key: dict[str, Any]) -> Path:
        return self.folder / f"{encoder_fingerprint(key)[:32]}.json"

    def lookup(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """The identity stored for ``key`` while every file it was stamped with is unchanged, else ``None``."""
        try:
            entry = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        if entry.get("format") != IDENTITY_CACHE_FORMAT or entry.get("key") != json.loads(json.dumps(key)):
            return None
        files = entry.get("files")
        if not isinstance(files, list) or not all(_unchanged(stamp) for stamp in files):
            return None
        return entry["identity"]

    def store(self, key: dict[str, Any], identity: dict[str, Any], read: Iterable[str | Path]) -> None:
        """Keep ``identity`` for ``key``, stamped with the files in ``read`` (see :func:`stamp_files`)."""
        record = {"format": IDENTITY_CACHE_FORMAT, "key": key, "identity": identity, "files": stamp_files(read)}
        atomic_write_json(self.path(key), record)

    def forget(self, key: dict[str, Any]) -> None:
        self.path(key).unlink(missing_ok=True)
