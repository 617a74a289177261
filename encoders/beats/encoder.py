"""X-ARES wrappers for BEATs / OpenBEATs and their checkpoint loader.

Frames: BEATs emits 8 frequency tokens per 160 ms step; the wrappers average them
(``token_pooling="mean"``, ``output_dim`` = D) or concatenate them (``"concat"``, 8 * D), with
``hop_size_in_ms = 160``.

Weights: ``BEATsEncoder()`` loads the card's checkpoint through
:func:`xbench.encoders.weights.fetch_weights` (Microsoft's links with the project's fetcher, the OpenBEATs
files from their Hugging Face repositories; offline, the error says where to place the file). ``checkpoint=``
takes a Microsoft or OpenBEATs ``{"cfg", "model"}`` file, an ESPnet fine-tune (bare state dict with ``encoder.`` keys,
``config.yaml`` beside it optional) or a folder holding one. ``pretrained=False``, or
``XBENCH_RANDOM_WEIGHTS=1`` (set by the test suite), builds seeded random weights instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xbench.encoders.beats import CARDS, OPENBEATS_REPOS
from xbench.encoders.beats.model import VARIANTS, BeatsConfig, BeatsModel, infer_config, pool_frequency_tokens
from xbench.encoders.checkpoints import load_torch_checkpoint
from xbench.encoders.registry import check_card
from xbench.encoders.weights import WeightsUnavailableError, fetch_weights, seeded, use_pretrained

log = logging.getLogger(__name__)


def _espnet_beats_config(folder: Path) -> dict[str, Any] | None:
    path = folder / "config.yaml"
    if not path.is_file():
        return None
    import yaml

    conf = yaml.safe_load(path.read_text()) or {}
    return (conf.get("encoder_conf") or {}).get("beats_config")


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """State dict and ``cfg`` (None when the file has none) of a BEATs/OpenBEATs/ESPnet checkpoint."""
    path = Path(path).expanduser()
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in (".pt", ".pth", ".ckpt") and p.is_file())
        if not found:
            raise FileNotFoundError(f"{path}: no .pt, .pth or .ckpt checkpoint inside")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"BEATs checkpoint {path} not found")
    obj = load_torch_checkpoint(path, mmap=False)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj.get("cfg"), dict):
        return obj["model"], obj["cfg"]
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        return obj["model"], _espnet_beats_config(path.parent)
    return obj, _espnet_beats_config(path.parent)


def build_model(
    variant: str = "base", checkpoint: str | Path | None = None, seed: int = 0
) -> tuple[BeatsModel, str, list[str]]:
    """A :class:`BeatsModel`, where its weights came from, and the checkpoint keys deliberately dropped."""
    if checkpoint is None:
        with seeded(seed):
            model = BeatsModel(VARIANTS[variant])
        return model, f"random (seed {seed})", []
    state, cfg = load_checkpoint(checkpoint)
    config = BeatsConfig.from_dict(cfg) if cfg else infer_config(state, VARIANTS.get(variant))
    model = BeatsModel(config)
    dropped = model.load_reference_state_dict(state)
    if dropped:
        log.info("BEATs checkpoint %s: dropped %d non-encoder keys (%s ...)", checkpoint, len(dropped), dropped[:3])
    return model, str(checkpoint), dropped


class BEATsEncoder(nn.Module):
    """BEATs iteration 3 for X-ARES: ``[B, W]`` 16 kHz -> ``[B, frames // 16, 768]`` at 160 ms.

    ``frames = 1 + (W - 400) // 160`` (Kaldi fbank); inputs under 3200 samples are repeated first.
    ``token_pooling="concat"`` gives ``8 * 768`` dimensions instead of the mean over frequency.
    """

    sampling_rate = 16000
    hop_size_in_ms = 160
    output_dim = 768
    variant = "base"
    card_name = "beats-iter3"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        pretrained: bool | None = None,
        token_pooling: str = "mean",
    ) -> None:
        super().__init__()
        if token_pooling not in ("mean", "concat"):
            raise ValueError(f"token_pooling must be 'mean' or 'concat', got {token_pooling!r}")
        fetched = None
        if checkpoint is None:
            pretrained = use_pretrained(pretrained)
            if pretrained:
                checkpoint = fetched = self._fetch()
        self.model, self.weights_source, self.dropped_keys = build_model(self.variant, checkpoint)
        if checkpoint is None:
            log.warning("%s: random weights (%s)", type(self).__name__, self.weights_source)
        self.token_pooling = token_pooling
        width = self.model.config.encoder_embed_dim
        self.output_dim = width * (self.model.config.freq_tokens if token_pooling == "concat" else 1)
        if fetched is not None and token_pooling == "mean":  # the card's own file must have the card's shape
            check_card(self, next(c for c in CARDS if c.name == self.card_name), fetched)
        self.eval()

    def _fetch(self) -> Path:
        card = next(c for c in CARDS if c.name == self.card_name)
        try:
            return fetch_weights(card)
        except WeightsUnavailableError as exc:
            repo = OPENBEATS_REPOS.get(card.name)
            if repo is None:
                raise
            raise WeightsUnavailableError(f"{exc}; it is the {{'cfg', 'model'}} .pt checkpoint of {repo}") from exc

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        tokens = self.model(audio)
        return pool_frequency_tokens(tokens, self.model.config.freq_tokens, self.token_pooling)


class BEATsIter1Encoder(BEATsEncoder):
    """BEATs iteration 1 (random-projection tokenizer targets), 768-d, 160 ms."""

    card_name = "beats-iter1"


class BEATsIter2Encoder(BEATsEncoder):
    """BEATs iteration 2, 768-d, 160 ms."""

    card_name = "beats-iter2"


class BEATsIter3PlusAS2MEncoder(BEATsEncoder):
    """BEATs iteration 3+ (tokenizer distilled from an AudioSet-2M fine-tuned teacher), 768-d, 160 ms."""

    card_name = "beats-iter3-plus-as2m"


class OpenBEATsBaseI1Encoder(BEATsEncoder):
    """OpenBEATs-Base iteration 1, 768-d, 160 ms."""

    card_name = "openbeats-base-i1"


class OpenBEATsBaseI2Encoder(BEATsEncoder):
    """OpenBEATs-Base iteration 2, 768-d, 160 ms."""

    card_name = "openbeats-base-i2"


class OpenBEATsBaseI3Encoder(BEATsEncoder):
    """OpenBEATs-Base iteration 3, 768-d, 160 ms."""

    card_name = "openbeats-base-i3"


class OpenBEATsLargeI1Encoder(BEATsEncoder):
    """OpenBEATs-Large iteration 1 (24 x 1024), 160 ms."""

    output_dim = 1024
    variant = "large"
    card_name = "openbeats-large-i1"


class OpenBEATsLargeI2Encoder(OpenBEATsLargeI1Encoder):
    """OpenBEATs-Large iteration 2 (24 x 1024), 160 ms."""

    card_name = "openbeats-large-i2"


class OpenBEATsLargeI3Encoder(OpenBEATsLargeI1Encoder):
    """OpenBEATs-Large iteration 3 (24 x 1024), 160 ms."""

    card_name = "openbeats-large-i3"
