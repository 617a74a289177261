"""X-ARES wrappers for Dasheng and its checkpoint loader.

Weights: ``DashengEncoder()`` loads the card's checkpoint through
:func:`xbench.encoders.weights.fetch_weights` (the per-user cache, downloading from Zenodo when
online; offline it raises naming the file and where to put it). ``checkpoint=`` takes a local
Zenodo ``.pt`` (``{"model", "config"}``), an HF ``model.safetensors`` (``encoder.`` keys, no
front-end buffers) or a folder holding one. ``pretrained=False``, or the environment variable
``XBENCH_RANDOM_WEIGHTS=1`` (set by the test suite), builds the architecture with seeded random
weights and never touches the network; ``weights_source`` says which happened.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xbench.encoders.checkpoints import load_torch_checkpoint
from xbench.encoders.dasheng import CARDS
from xbench.encoders.dasheng.model import VARIANTS, DashengConfig, DashengModel, infer_config
from xbench.encoders.registry import check_card
from xbench.encoders.weights import fetch_weights, seeded, use_pretrained

log = logging.getLogger(__name__)

_HF_NAMES = {"dasheng-base": "base", "dasheng-0.6B": "0.6b", "dasheng-1.2B": "1.2b"}
MIN_SAMPLES = 640  # 4 STFT frames = one token; shorter clips are zero-padded to this
XARES_CHUNK_SECONDS = 10  # X-ARES's example/dasheng/dasheng_encoder.py: 10 s chunks, a last one under 1 s padded to 1 s


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], DashengConfig | None]:
    """State dict and (when the file says) config of a Zenodo ``.pt``, HF safetensors file or folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        found = [path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()]
        found += sorted(path.glob("*.pt"))
        if not found:
            raise FileNotFoundError(f"{path}: no model.safetensors, pytorch_model.bin or *.pt inside")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"Dasheng checkpoint {path} not found")
    config = None
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
        config = _hf_config(path.parent / "config.json")
    else:
        obj = load_torch_checkpoint(path, mmap=False)
        if isinstance(obj, dict) and "model" in obj:
            state = obj["model"]
            if isinstance(obj.get("config"), dict):
                config = DashengConfig.from_dict(obj["config"])
        else:
            state = obj
            config = _hf_config(path.parent / "config.json")
    return state, config


def _hf_config(path: Path) -> DashengConfig | None:
    if not path.is_file():
        return None
    raw: dict[str, Any] = json.loads(path.read_text())
    base = VARIANTS.get(_HF_NAMES.get(str(raw.get("name")), ""), DashengConfig())
    kwargs = {**base.to_dict(), **(raw.get("encoder_kwargs") or {})}
    return DashengConfig.from_dict(kwargs)


def build_model(
    variant: str = "base",
    checkpoint: str | Path | None = None,
    top_db_scope: str = "clip",
    seed: int = 0,
) -> tuple[DashengModel, str]:
    """A :class:`DashengModel` and a note of where its weights came from (``checkpoint=None``: random)."""
    if checkpoint is None:
        with seeded(seed):
            model = DashengModel(VARIANTS[variant], top_db_scope=top_db_scope)
        return model, f"random (seed {seed})"
    state, config = load_checkpoint(checkpoint)
    config = config or infer_config(state, VARIANTS.get(variant))
    model = DashengModel(config, top_db_scope=top_db_scope)
    model.load_reference_state_dict(state)
    return model, str(checkpoint)


class DashengEncoder(nn.Module):
    """Dasheng-base for X-ARES: ``[B, W]`` 16 kHz -> ``[B, (1 + W // 160) // 4, 768]`` at 40 ms.

    ``top_db_scope``: ``"clip"`` (default) floors each clip's log-mel at its own max - 120 dB;
    ``"batch"`` uses the loudest clip of the batch, exactly as the reference package does.
    ``use_protocol("xares")`` (called by the harness under ``--protocol xares``) makes it behave as
    X-ARES's own Dasheng wrapper (``example/dasheng/dasheng_encoder.py`` over the ``dasheng`` package):
    the batch-global top-dB floor, and clips longer than 10 s encoded in 10 s chunks whose frames are
    concatenated, a last chunk shorter than 1 s zero-padded to 1 s with all its frames kept.
    """

    sampling_rate = 16000
    hop_size_in_ms = 40
    output_dim = 768
    variant = "base"
    card_name = "dasheng-base"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        pretrained: bool | None = None,
        top_db_scope: str = "clip",
    ) -> None:
        super().__init__()
        card = fetched = None
        if checkpoint is None:
            pretrained = use_pretrained(pretrained)
            if pretrained:
                card = next(c for c in CARDS if c.name == self.card_name)
                checkpoint = fetched = fetch_weights(card)
        self.model, self.weights_source = build_model(self.variant, checkpoint, top_db_scope)
        self.top_db_scope = top_db_scope  # as built; use_protocol returns to it outside the xares protocol
        self.xares_chunks = False
        if checkpoint is None:
            log.warning("%s: random weights (%s)", type(self).__name__, self.weights_source)
        self.output_dim = self.model.config.embed_dim
        if fetched is not None:  # the card's own file must have the card's shape
            check_card(self, card, fetched)
        self.eval()

    def use_protocol(self, protocol: str) -> dict[str, Any]:
        """The harness's protocol hook (:func:`xbench.encoder.contract.apply_protocol`): ``xares`` behaves as
        X-ARES's Dasheng wrapper (see the class), any other protocol as built."""
        xares = protocol == "xares"
        self.model.top_db_scope = "batch" if xares else self.top_db_scope
        self.xares_chunks = xares
        if not xares:
            return {}
        return {"top_db_scope": "batch", "chunks": "example/dasheng: 10 s, a last chunk under 1 s padded to 1 s"}

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        chunk = XARES_CHUNK_SECONDS * self.sampling_rate
        if self.xares_chunks and audio.shape[-1] > chunk:
            pieces = []
            for part in audio.split(chunk, dim=-1):
                if part.shape[-1] < self.sampling_rate:
                    part = torch.nn.functional.pad(part, (0, self.sampling_rate - part.shape[-1]))
                pieces.append(self.model(part))
            return torch.cat(pieces, dim=1)
        if audio.shape[-1] < MIN_SAMPLES:
            audio = torch.nn.functional.pad(audio, (0, MIN_SAMPLES - audio.shape[-1]))
        return self.model(audio)


class Dasheng06BEncoder(DashengEncoder):
    """Dasheng-0.6B (1280-d, 32 layers) for X-ARES, 40 ms frames."""

    output_dim = 1280
    variant = "0.6b"
    card_name = "dasheng-0.6b"


class Dasheng12BEncoder(DashengEncoder):
    """Dasheng-1.2B (1536-d, 40 layers) for X-ARES, 40 ms frames."""

    output_dim = 1536
    variant = "1.2b"
    card_name = "dasheng-1.2b"
