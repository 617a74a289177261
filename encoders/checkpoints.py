"""Which layout a user's checkpoint has, read from its keys alone (``--weights PATH``).

Each layout belongs to one family; :func:`detect` names the layout of a file or folder (reading only a
safetensors header, or a memory-mapped ``torch.load``), so a wrong-family or corrupt file is refused in one
line before any model is built. The layouts:

========================  ============  ================================================================
layout                    family        what it holds
========================  ============  ================================================================
Zenodo                    dasheng       ``.pt`` with ``{"model": state dict, "config": dict}`` (Dasheng's
                                        Zenodo release), or the bare state dict (``patch_embed.*``, ``blocks.*``)
HF (Dasheng)              dasheng       ``model.safetensors`` / ``pytorch_model.bin`` with ``encoder.patch_embed.*``
                                        keys, ``config.json`` beside it optional (mispeech/dasheng-*)
Microsoft                 beats         ``.pt`` with ``{"cfg": dict, "model": state dict}`` (BEATs, OpenBEATs)
ESPnet                    beats         an ESPnet model file with ``encoder.patch_embedding.*`` keys,
                                        ``config.yaml`` beside it optional
Auden                     captionstew   a folder with ``config.json`` (zipformer) and ``pretrained``/``model``
                                        ``.safetensors``/``.pt`` (``encoder_embed.*`` keys)
HF (transformers)         hf            a ``save_pretrained`` folder: ``config.json`` with ``model_type`` and
                                        ``model.safetensors`` or ``pytorch_model.bin``
========================  ============  ================================================================
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xbench.encoder.contract import EncoderLoadError

TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
WEIGHT_NAMES = (
    "model.safetensors",
    "pytorch_model.bin",
    "pretrained.safetensors",
    "pretrained.pt",
    "model.pt",
)


class CheckpointError(EncoderLoadError):
    """A checkpoint that is missing, corrupt, of an unknown layout, of another family or of the wrong size."""


@dataclass(frozen=True)
class Layout:
    """One checkpoint layout: its short name, title, family and what it holds."""

    name: str
    title: str
    family: str
    holds: str

    def describe(self) -> str:
        return f"{self.title} ({self.holds})"


LAYOUTS = {
    layout.name: layout
    for layout in (
        Layout("zenodo", "Zenodo", "dasheng", "Dasheng .pt {model, config} or its bare state dict"),
        Layout("hf-dasheng", "HF", "dasheng", "Dasheng model.safetensors with encoder.* keys [+ config.json]"),
        Layout("microsoft", "Microsoft", "beats", "BEATs/OpenBEATs .pt {cfg, model}"),
        Layout("espnet", "ESPnet", "beats", "ESPnet model file with encoder.patch_embedding.* keys [+ config.yaml]"),
        Layout("auden", "Auden", "captionstew", "folder with a zipformer config.json and model/pretrained weights"),
        Layout("hf-transformers", "HF", "hf", "save_pretrained folder: config.json + model.safetensors"),
    )
}


def accepted(family: str | None = None) -> str:
    """The layouts ``family`` accepts (every layout when None), for messages."""
    chosen = [lay for lay in LAYOUTS.values() if family is None or lay.family == family]
    return "; ".join(lay.describe() for lay in chosen)


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _safetensors_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as handle:
            return list(handle.keys())
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({_first_line(exc)}); it is corrupt or truncated: fetch it again"
        ) from exc


# Plain-data classes that released checkpoints pickle beside their tensors (fairseq- and ESPnet-style training
# arguments); torch's weights-only unpickler refuses them unless allowlisted. Nothing here runs code on load.
SAFE_GLOBALS = (argparse.Namespace,)
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def load_torch_checkpoint(path: str | Path, mmap: bool = True) -> Any:
    """``torch.load`` of a ``.pt``/``.pth``/``.ckpt``/``.bin`` file with weights-only unpickling (plus
    :data:`SAFE_GLOBALS`), memory-mapped where the format allows; one-line :class:`CheckpointError` otherwise.

    A file that pickles other Python objects is refused as such (naming the object), not as corrupt.
    """
    import torch

    path = Path(path)
    with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
        if mmap:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except Exception:  # the legacy (non-zip) format cannot be memory-mapped; a broken file fails both ways
                pass
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = _UNSUPPORTED_GLOBAL.search(str(exc))
            if found:
                raise CheckpointError(
                    f"{path}: pickles the Python object {found.group(1)}, which xbench does not unpickle (weights-only "
                    "loading: unpickling can run code); save its state dict alone, e.g. "
                    "torch.save({'model': state_dict}, FILE), and pass that file"
                ) from exc
            raise _unreadable(path, exc) from exc
        except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
            raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"{path}: not a readable checkpoint ({_first_line(exc)}); it is corrupt or truncated: fetch it again"
    )


def _state(obj: Any) -> tuple[dict[str, Any], str | None]:
    """The state dict inside a loaded checkpoint object and the key it sat under (None: the object itself)."""
    if not isinstance(obj, dict):
        return {}, None
    for key in ("model", "state_dict", "module"):
        if isinstance(obj.get(key), dict):
            return obj[key], key
    return obj, None


def _keys_layout(keys: list[str], wrapper: dict[str, Any] | None) -> str | None:
    """The layout name that ``keys`` (and the checkpoint's top-level dict) show, or None."""
    bare = [k.removeprefix("module.") for k in keys]
    if any("encoder_embed.conv." in k for k in bare):
        return "auden"
    if any(k.endswith("patch_embed.proj.weight") for k in bare):
        return "hf-dasheng" if "encoder.patch_embed.proj.weight" in bare else "zenodo"
    if any(k.endswith("patch_embedding.weight") for k in bare):
        if wrapper is not None and isinstance(wrapper.get("cfg"), dict):
            return "microsoft"
        return "espnet" if "patch_embedding.weight" not in bare else "microsoft"
    return None


def _file_layout(path: Path) -> tuple[str | None, list[str]]:
    if path.suffix == ".safetensors":
        keys = _safetensors_keys(path)
        return _keys_layout(keys, None), keys
    obj = load_torch_checkpoint(path)
    state, _ = _state(obj)
    keys = [str(k) for k in state]
    return _keys_layout(keys, obj if isinstance(obj, dict) else None), keys


def weight_file(folder: Path) -> Path | None:
    """The weight file a loader would read in ``folder``: a known name, else the first safetensors or torch file."""
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors")) or sorted(
        p for p in folder.rglob("*") if p.suffix in TORCH_SUFFIXES and p.is_file()
    )
    return found[0] if found else None


def _transformers_folder(folder: Path) -> bool:
    path = folder / "config.json"
    if not path.is_file():
        return False
    try:
        raw = json.loads(path.read_text())
    except ValueError:
        return False
    has_weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")) or any(folder.glob("*.index.json"))
    return isinstance(raw, dict) and isinstance(raw.get("model_type"), str) and has_weights


def detect(path: str | Path) -> Layout:
    """The layout of the checkpoint file or folder at ``path``; :class:`CheckpointError` (one line) when it is
    missing, unreadable or of no known layout (the message lists the accepted layouts)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or folder")
    keys: list[str] = []
    name = None
    if path.is_dir():
        file = weight_file(path)
        if file is not None:
            name, keys = _file_layout(file)
        if name is None and _transformers_folder(path):
            name = "hf-transformers"
    else:
        name, keys = _file_layout(path)
    if name == "auden":
        folder = path if path.is_dir() else path.parent
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"{path}: an Auden (zipformer) checkpoint needs its config.json beside it")
    if name is None:
        sample = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "") if keys else "no state dict found"
        raise CheckpointError(f"{path}: checkpoint layout not recognised (keys: {sample}); accepted: {accepted()}")
    return LAYOUTS[name]
