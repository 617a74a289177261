"""The encoder contract: how xbench finds, validates and calls an audio encoder.

An encoder is a ``torch.nn.Module`` mapping a waveform batch ``[B, W]`` (float32, mono, at
``sampling_rate``) to frame embeddings ``[B, T, D]``, with three attributes: ``sampling_rate``
(int Hz), ``output_dim`` (int D) and ``hop_size_in_ms`` (ms per output frame).

Ways to name one (:func:`load_encoder`):

* a ``.py`` file, X-ARES style (a class whose name ends in ``Encoder``, built with no arguments),
  or ``file.py:Name`` to pick one of several candidates; it loads from any working directory;
* a zoo name registered in the ``xbench.encoders`` entry-point group (``xbench zoo ls``);
* ``hf:ORG/NAME[@REVISION]`` / ``hf:/folder`` or ``NAME=CHECKPOINT`` (:mod:`xbench.encoder.spec`);
* an ``nn.Module`` instance (Python API), or ``package.module:Name`` for an importable module.

:class:`HarnessedEncoder` is the one wrapper through which the harness calls an encoder. It applies
``.eval()``, ``torch.inference_mode()``, device placement, chunking of long inputs and conversion of
the output to float32 on the CPU, and validates every output. ``HarnessOptions(enabled=False)``
switches all of that off and calls the encoder exactly as X-ARES 0.1.3 does (no ``.eval()``, no
chunking, output moved to the CPU as it is).

A run under ``--protocol xares`` never chunks (:meth:`HarnessOptions.for_protocol`) and tells the encoder
its protocol through the encoder's optional ``use_protocol`` method (:func:`apply_protocol`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import numbers
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch

from xbench.core.devices import describe_device
from xbench.core.enums import Precision, choice

ENTRY_POINT_GROUP = "xbench.encoders"
REQUIRED_ATTRIBUTES = ("sampling_rate", "output_dim", "hop_size_in_ms")


class EncoderError(Exception):
    """Base class for problems with a user's encoder."""


class EncoderLoadError(EncoderError):
    """The encoder could not be found, imported or constructed."""


class EncoderAttributeError(EncoderError):
    """A required attribute is missing or has the wrong type or value."""


class EncoderOutputError(EncoderError):
    """The encoder returned something that does not follow the contract."""


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def zoo_entry_points() -> dict[str, Any]:
    """Encoders registered in the ``xbench.encoders`` entry-point group, by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


@contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    """Put ``folder`` first on ``sys.path`` while an encoder file imports its own neighbours."""
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        try:
            sys.path.remove(entry)
        except ValueError:
            pass


def _import_file(path: Path) -> Any:
    """Import a Python file as a fresh module under a name derived from its absolute path."""
    path = path.resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"xbench_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise EncoderLoadError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with _on_sys_path(path.parent):
            spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise EncoderLoadError(f"{path}: importing the file failed: {type(exc).__name__}: {exc}") from exc
    return module


def encoder_candidates(module: Any) -> tuple[list[str], list[str]]:
    """Names in ``module`` that look like X-ARES encoders: (defined there, imported from elsewhere).

    A candidate is an ``nn.Module`` subclass whose name ends in ``Encoder``.
    """
    own, imported = [], []
    for name, value in sorted(vars(module).items()):
        if name.endswith("Encoder") and inspect.isclass(value) and issubclass(value, torch.nn.Module):
            (own if value.__module__ == module.__name__ else imported).append(name)
    return own, imported


def _construct(factory: Callable[[], Any], where: str) -> torch.nn.Module:
    try:
        encoder = factory()
    except TypeError as exc:
        raise EncoderLoadError(
            f"{where}: could not be built with no arguments ({exc}); X-ARES encoders are constructed as "
            "`cls()`: give every constructor argument a default"
        ) from exc
    except Exception as exc:
        raise EncoderLoadError(f"{where}: constructing the encoder failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(encoder, torch.nn.Module):
        raise EncoderLoadError(f"{where}: produced a {type(encoder).__name__}, not a torch.nn.Module")
    return encoder


def load_encoder_class(spec: str) -> Callable[[], Any]:
    """Resolve ``file.py``, ``file.py:Name``, a zoo name or ``module:Name`` to a no-argument factory."""
    path_part, _, attr = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    path = Path(path_part).expanduser()
    if path.suffix == ".py" or path.is_file():
        if not path.is_file():
            raise EncoderLoadError(f"{path}: encoder file not found (working directory: {Path.cwd()})")
        module = _import_file(path)
        if attr:
            if not hasattr(module, attr):
                own, imported = encoder_candidates(module)
                raise EncoderLoadError(
                    f"{path}: has no attribute {attr!r}; encoder candidates found: {own + imported or 'none'}"
                )
            return getattr(module, attr)
        own, imported = encoder_candidates(module)
        chosen = own if own else imported
        if len(chosen) == 1:
            return getattr(module, chosen[0])
        if not chosen:
            raise EncoderLoadError(
                f"{path}: no encoder class found (X-ARES rule: an nn.Module subclass whose name ends in "
                f"'Encoder'); name one explicitly as {path}:ClassName"
            )
        raise EncoderLoadError(
            f"{path}: several encoder candidates found: {', '.join(chosen)}; pick one as {path}:{chosen[0]}"
        )
    zoo = zoo_entry_points()
    if spec in zoo:
        try:
            return zoo[spec].load()
        except Exception as exc:
            raise EncoderLoadError(
                f"zoo encoder {spec!r} ({zoo[spec].value}) could not be imported: {type(exc).__name__}: {exc}; "
                "is its extra installed?"
            ) from exc
    if attr:
        try:
            module = importlib.import_module(path_part)
        except ImportError as exc:
            raise EncoderLoadError(f"{spec}: module {path_part!r} cannot be imported: {exc}") from exc
        if not hasattr(module, attr):
            raise EncoderLoadError(f"{spec}: module {path_part!r} has no attribute {attr!r}")
        return getattr(module, attr)
    raise EncoderLoadError(
        f"{spec!r} is neither an encoder file (.py), nor a zoo name, nor 'module:Name'. "
        f"Zoo names: {', '.join(sorted(zoo)) or 'none installed'}"
    )


def load_encoder(encoder: Any) -> torch.nn.Module:
    """Return an encoder instance from a file, a zoo name, ``module:Name``, ``hf:ORG/NAME[@REV]``,
    ``NAME=CHECKPOINT``, an :class:`xbench.encoder.spec.EncoderSpec` (with weights, layer, ...) or an instance.

    Raises :class:`EncoderLoadError` with a message naming the file or name at fault.
    """
    from xbench.encoder.spec import EncoderSpec, as_spec, build_encoder

    if isinstance(encoder, torch.nn.Module):
        return encoder
    if not isinstance(encoder, str | Path | EncoderSpec):
        raise EncoderLoadError(f"expected a path, zoo name or nn.Module, got {type(encoder).__name__}")
    return build_encoder(as_spec(encoder))


# --------------------------------------------------------------------------------------------------
# Attributes
# --------------------------------------------------------------------------------------------------


def attribute_problems(encoder: Any) -> list[str]:
    """Every problem with the three required attributes, each naming the attribute; empty if none."""
    problems = []
    for name in REQUIRED_ATTRIBUTES:
        if not hasattr(encoder, name):
            problems.append(f"attribute {name!r} is missing")
            continue
        value = getattr(encoder, name)
        if name == "hop_size_in_ms":
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value <= 0:
                problems.append(f"attribute 'hop_size_in_ms' must be a positive number, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            problems.append(f"attribute {name!r} must be a positive int, got {value!r} ({type(value).__name__})")
    return problems


def validate_attributes(encoder: Any) -> None:
    """Raise :class:`EncoderAttributeError` listing every attribute problem of ``encoder``."""
    problems = attribute_problems(encoder)
    if problems:
        raise EncoderAttributeError(f"{type(encoder).__name__}: " + "; ".join(problems))


# --------------------------------------------------------------------------------------------------
# The harness wrapper
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HarnessOptions:
    """How the harness calls an encoder.

    enabled: False calls the encoder as X-ARES 0.1.3 does: no ``.eval()``, no chunking, no dtype
        conversion (only ``inference_mode`` and moving input and output between devices).
    device: where the encoder runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
    chunk_seconds: inputs longer than this are encoded in chunks of this length and the frames
        concatenated; ``None`` never chunks.
    min_chunk_seconds: a last chunk shorter than this is zero-padded to this length and the frames
        computed from the padding are trimmed.
    precision: ``fp32`` (as built), or ``bf16``/``fp16``: the forward pass under ``torch.autocast``
        (the output is still converted to float32).
    tf32: on CUDA, allow TF32 matrix products and convolutions (off by default, so GPU and CPU agree closely).
    """

    enabled: bool = True
    device: str = "cpu"
    chunk_seconds: float | None = 10.0
    min_chunk_seconds: float = 1.0
    precision: str = "fp32"
    tf32: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", choice(Precision, self.precision, "precision"))

    def describe(self) -> dict[str, Any]:
        """The options as a plain dict (for cache keys and result files). Off the CPU the device's
        description (:func:`xbench.core.devices.describe_device`) and the TF32 setting are added, and the
        precision unless fp32, so embeddings made on a GPU or in reduced precision never share a key with
        CPU fp32 ones (whose keys stay as they were)."""
        described: dict[str, Any] = {
            "enabled": self.enabled,
            "chunk_seconds": self.chunk_seconds,
            "min_chunk_seconds": self.min_chunk_seconds,
        }
        if self.precision != "fp32":
            described["precision"] = self.precision
        device = describe_device(self.device)
        if device["type"] != "cpu":
            described["compute"] = {**device, "tf32": self.tf32}
        return described

    def for_protocol(self, protocol: str) -> HarnessOptions:
        """The options of a run under ``protocol``: ``xares`` passes whole clips (no chunking), as X-ARES's
        ``XaresTask.make_encoded_tar`` (``xares/task.py``) hands every padded batch to the encoder as it is."""
        return replace(self, chunk_seconds=None) if protocol == "xares" else self


PROTOCOL_HOOK = "use_protocol"
"""The optional encoder method through which a run tells the encoder its protocol (see :func:`apply_protocol`)."""


def apply_protocol(encoder: torch.nn.Module, protocol: str) -> dict[str, Any]:
    """Tell ``encoder`` the run's protocol through its optional ``use_protocol(protocol) -> dict`` method.

    The harness calls it once per run, before it takes the encoder's identity and before any audio.
    Under ``"xares"`` an encoder switches to the behaviour of X-ARES's own wrapper of its model (the zoo's
    Dasheng: ``example/dasheng/dasheng_encoder.py``'s 10 s chunks and the ``dasheng`` package's batch-global
    top-dB floor); under any other protocol it returns to the behaviour it was built with. It returns a
    JSON-safe dict of the protocol-specific settings in force, ``{}`` when it behaves as built; a non-empty
    dict is recorded in the encoder identity, so the two behaviours never share a cache entry.
    Returns ``{}`` for an encoder without the method.
    """
    hook = getattr(encoder, PROTOCOL_HOOK, None)
    if hook is None:
        return {}
    name = type(encoder).__name__
    if not callable(hook):
        raise EncoderAttributeError(f"{name}: {PROTOCOL_HOOK!r} must be a method use_protocol(protocol) -> dict")
    try:
        described = hook(protocol)
    except Exception as exc:
        raise EncoderError(f"{name}.{PROTOCOL_HOOK}({protocol!r}) failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(described, dict):
        raise EncoderAttributeError(
            f"{name}.{PROTOCOL_HOOK}({protocol!r}) returned {type(described).__name__}, expected a dict"
        )
    return described


def protocol_identity(harness: HarnessOptions, behaviour: dict[str, Any]) -> dict[str, Any]:
    """The harness options and a protocol behaviour (:func:`apply_protocol`) as the encoder identity records them."""
    return {**harness.describe(), **({"protocol_behaviour": behaviour} if behaviour else {})}


def check_output(output: Any, batch: int, output_dim: Any, who: str) -> torch.Tensor:
    """Raise :class:`EncoderOutputError` unless ``output`` is a float ``[batch, T, output_dim]`` tensor."""
    if not isinstance(output, torch.Tensor):
        raise EncoderOutputError(f"{who}: forward returned {type(output).__name__}, expected a torch.Tensor")
    if output.ndim != 3:
        raise EncoderOutputError(
            f"{who}: forward returned shape {list(output.shape)} ({output.ndim}-D), expected [B, T, D]"
        )
    if output.shape[0] != batch:
        raise EncoderOutputError(f"{who}: forward returned batch size {output.shape[0]} for an input batch of {batch}")
    if output.shape[2] != output_dim:
        raise EncoderOutputError(f"{who}: output last dimension is {output.shape[2]} but output_dim = {output_dim}")
    if not output.is_floating_point():
        raise EncoderOutputError(f"{who}: forward returned dtype {output.dtype}, expected a floating-point tensor")
    return output


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def real_frames(frames: int, real: int, padded: int) -> int:
    """How many of the ``frames`` an encoder returned for ``padded`` input samples come from the first ``real``
    samples (the rest were computed from zero padding): ``ceil(frames * real / padded)``, at least one."""
    return max(1, math.ceil(frames * real / padded))


class HarnessedEncoder:
    """Calls an encoder the way the harness does; ``__call__([B, W]) -> float32 [B, T, D]`` on the CPU.

    Validates the attributes on construction, moves the encoder to ``options.device`` and (when
    enabled) puts it in eval mode. Every output is checked with :func:`check_output`.
    """

    def __init__(self, encoder: torch.nn.Module, options: HarnessOptions | None = None) -> None:
        self.options = options or HarnessOptions()
        validate_attributes(encoder)
        self.device_type = torch.device(self.options.device).type
        if self.device_type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = self.options.tf32
            torch.backends.cudnn.allow_tf32 = self.options.tf32
        self.encoder = encoder.to(self.options.device)
        if self.options.enabled:
            self.encoder.eval()
        self.name = type(encoder).__name__
        self.sampling_rate = int(encoder.sampling_rate)
        self.output_dim = int(encoder.output_dim)
        self.hop_size_in_ms = float(encoder.hop_size_in_ms)

    def _forward(self, wave: torch.Tensor) -> torch.Tensor:
        precision = self.options.precision
        autocast = (
            torch.autocast(self.device_type, dtype=AUTOCAST_DTYPES[precision]) if precision != "fp32" else nullcontext()
        )
        with autocast:
            output = self.encoder(wave.to(self.options.device))
        return check_output(output, wave.shape[0], self.output_dim, self.name)

    def _chunked(self, wave: torch.Tensor) -> torch.Tensor:
        opts = self.options
        length = wave.shape[-1]
        if opts.chunk_seconds is None or length <= round(opts.chunk_seconds * self.sampling_rate):
            return self._forward(wave)
        chunk = round(opts.chunk_seconds * self.sampling_rate)
        min_len = round(opts.min_chunk_seconds * self.sampling_rate)
        pieces = []
        for start in range(0, length, chunk):
            part = wave[:, start : start + chunk]
            real = part.shape[-1]
            if real < min_len:
                part = torch.nn.functional.pad(part, (0, min_len - real))
                frames = self._forward(part)
                frames = frames[:, : real_frames(frames.shape[1], real, min_len)]
            else:
                frames = self._forward(part)
            pieces.append(frames)
        return torch.cat(pieces, dim=1)

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        """Encode a ``[B, W]`` (or ``[W]``) float waveform at ``sampling_rate``."""
        if wave.ndim == 1:
            wave = wave.unsqueeze(0)
        if wave.ndim != 2:
            raise ValueError(f"expected a waveform batch [B, W], got shape {list(wave.shape)}")
        wave = wave.float()
        with torch.inference_mode():
            if not self.options.enabled:
                return self._forward(wave).to("cpu")
            return self._chunked(wave).to("cpu", torch.float32)

    def frames_for(self, num_samples: int) -> float:
        """Frames the declared hop predicts for ``num_samples`` input samples."""
        return num_samples / self.sampling_rate * 1000.0 / self.hop_size_in_ms
