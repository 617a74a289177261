"""What the user named as the encoder: ``--encoder`` with ``--weights``, ``--layer``, ``--trust-remote-code``
and ``--name``, and the name results carry.

``--encoder`` takes, besides what :func:`xbench.encoder.contract.load_encoder_class` resolves (a ``.py``
file, ``file.py:Name``, a zoo name, ``module:Name``):

* ``hf:ORG/NAME[@REVISION]`` or ``hf:/local/folder``: a transformers audio model
  (:mod:`xbench.encoders.hf.auto`), ``--layer`` choosing its hidden state, ``--trust-remote-code``
  allowing a model that runs its repository's code;
* ``NAME=PATH`` (the same as ``NAME --weights PATH``): zoo entry ``NAME`` with the checkpoint ``PATH``,
  refused when its shapes disagree with the card, or a family name (``dasheng``, ``beats``,
  ``captionstew``) taking its shape from the file (:func:`xbench.encoders.registry.build`).

Results name the encoder by :func:`encoder_name`: ``--name`` when given, else what was typed (zoo
name, ``hf:`` id with the resolved commit, file stem), plus the checkpoint's stem and the layer.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from xbench.encoder.contract import EncoderLoadError

HF_PREFIX = "hf:"


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder as named on the command line (see the module docstring)."""

    target: str
    weights: str | None = None
    layer: int | str | None = None
    trust_remote_code: bool = False
    name: str | None = None

    @classmethod
    def parse(
        cls,
        text: str,
        weights: str | None = None,
        layer: int | str | None = None,
        trust_remote_code: bool = False,
        name: str | None = None,
    ) -> EncoderSpec:
        """``text`` with the options; ``NAME=PATH`` sets the weights (an existing path containing ``=`` is a path)."""
        target = str(text)
        if not target.startswith(HF_PREFIX) and "=" in target and not Path(target).exists():
            target, path = target.split("=", 1)
            if weights is not None and weights != path:
                raise EncoderLoadError(f"{text!r}: weights given twice ({path} and --weights {weights})")
            weights = path
        if not target:
            raise EncoderLoadError(f"{text!r}: no encoder named before '='")
        if name is not None and not name.strip():
            raise EncoderLoadError("--name must not be empty")
        return cls(target, weights or None, layer, trust_remote_code, name)

    @property
    def is_hf(self) -> bool:
        return self.target.startswith(HF_PREFIX)

    def describe(self) -> dict[str, Any]:
        """How the encoder is built, JSON-safe, paths made absolute (the results name is left out: it changes
        no embedding)."""
        out = {k: v for k, v in asdict(self).items() if k != "name"}
        if self.weights is not None:
            out["weights"] = str(Path(self.weights).expanduser().absolute())
        path_part, sep, attr = self.target.partition(":")
        if not self.is_hf and Path(path_part).expanduser().is_file():
            out["target"] = str(Path(path_part).expanduser().absolute()) + sep + attr
        return out

    def __str__(self) -> str:
        """One canonical line of :meth:`describe` (what an identity cache keys a named encoder by)."""
        return json.dumps(self.describe(), sort_keys=True)


def as_spec(encoder: str | Path | EncoderSpec) -> EncoderSpec:
    """``encoder`` as an :class:`EncoderSpec`."""
    return encoder if isinstance(encoder, EncoderSpec) else EncoderSpec.parse(str(encoder))


def build_encoder(spec: EncoderSpec) -> torch.nn.Module:
    """Build the encoder ``spec`` names; :class:`EncoderLoadError` (one line) when it cannot."""
    from xbench.encoder.contract import _construct, load_encoder_class

    if spec.is_hf:
        if spec.weights is not None:
            raise EncoderLoadError(f"{spec.target}: an hf: model's weights are its folder's; drop --weights")
        from xbench.encoders.hf.auto import load_hf_encoder

        return load_hf_encoder(spec.target, spec.layer, spec.trust_remote_code)
    if spec.trust_remote_code:
        raise EncoderLoadError("--trust-remote-code applies to hf: models only")
    from xbench.encoders.registry import build, family_names, is_buildable

    if spec.weights is not None or spec.layer is not None or spec.target in family_names():
        if not is_buildable(spec.target):
            raise EncoderLoadError(
                f"{spec.target}: --weights and --layer apply to zoo names, families "
                f"({', '.join(family_names())}) and hf: models, not to an encoder file or module"
            )
        return build(spec.target, spec.weights, spec.layer)
    return _construct(load_encoder_class(spec.target), spec.target)


def _typed(spec: EncoderSpec) -> str:
    """The encoder part of the name: the file stem (``stem.Class``) for a file, else the target as typed."""
    path_part, _, attr = spec.target.partition(":") if not Path(spec.target).exists() else (spec.target, "", "")
    path = Path(path_part).expanduser()
    if path.suffix == ".py" or path.is_file():
        return f"{path.stem}.{attr}" if attr else path.stem
    return spec.target


def encoder_name(encoder: Any, identity: dict[str, Any]) -> str:
    """The name results give the encoder ``encoder`` (a spec, its text, or a module) whose identity is ``identity``.

    ``--name`` when given; else an ``hf:`` model as ``hf:ORG/NAME@<12 hex of the commit>`` (``hf:<folder>`` for
    a local folder outside the Hugging Face cache), a file by its stem (``stem.Class`` for ``file.py:Class``),
    a zoo or module name as typed; ``@<checkpoint stem>`` and ``-layer<N>`` added for ``--weights`` and
    ``--layer``. A module instance is named by its class.
    """
    if isinstance(encoder, torch.nn.Module):
        return type(encoder).__name__
    spec = as_spec(encoder)
    if spec.name:
        return spec.name.strip()
    if spec.is_hf:
        settings = identity.get("settings") or {}
        body = spec.target.removeprefix(HF_PREFIX).split("@")[0]
        model = settings.get("model") or Path(body).expanduser().name
        name = f"{HF_PREFIX}{model}" + (f"@{settings['revision'][:12]}" if settings.get("revision") else "")
    else:
        name = _typed(spec)
    if spec.weights:
        name += f"@{Path(spec.weights).expanduser().name.split('.')[0]}"
    if spec.layer is not None:
        name += f"-layer{spec.layer}"
    return name


def result_slug(encoder: Any, identity: dict[str, Any]) -> str:
    """The results folder and table name: :func:`encoder_name` made folder-safe, ``-`` and 16 hex of the
    identity's fingerprint."""
    from xbench.encoder.identity import encoder_fingerprint

    return f"{name_slug(encoder_name(encoder, identity))}-{encoder_fingerprint(identity)[:16]}"


def name_slug(name: str) -> str:
    """``name`` as one folder name: characters outside ``[A-Za-z0-9_.@-]`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", name).strip("_") or "encoder"


__all__ = ["EncoderSpec", "as_spec", "build_encoder", "encoder_name", "name_slug", "result_slug"]
