"""X-ARES wrapper for CaptionStew's Zipformer-M audio encoder and the Auden checkpoint loader.

No CaptionStew weights are public (neither the AudenAI Hugging Face organisation nor the Auden repository
has a CaptionStew checkpoint). ``CaptionStewEncoder()`` therefore loads a local
Auden checkpoint directory (``config.json`` + ``pretrained.safetensors`` / ``model.safetensors`` /
``pretrained.pt`` / ``model.pt``) given as ``checkpoint=`` or through ``$XBENCH_CAPTIONSTEW_CHECKPOINT``;
a bare encoder, or a CLAP / captioning model whose encoder sits under ``audio_encoder.``, both load
(``module.`` and the parent prefix are stripped, as Auden's ``ZipformerEncoderModel.from_pretrained``
does, and ``model_batch_count`` is inserted when absent). Loading is strict: a missing or unexpected
encoder key is an error. ``pretrained=False``, or ``XBENCH_RANDOM_WEIGHTS=1`` (set by the test suite),
builds seeded random weights; ``weights_source`` says which happened.

Front-end: 80-bin Kaldi fbank of the [-1, 1] waveform (no 2**15 scaling), 25/10 ms, dither 0,
``snip_edges=False``, ``high_freq=-400`` (Auden's kaldifeat / Lhotse settings), no normalisation.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xbench.encoders.captionstew.zipformer import ZIPFORMER_M, ZipformerConfig, ZipformerModel, output_frames
from xbench.encoders.checkpoints import load_torch_checkpoint
from xbench.encoders.frontends import kaldi_fbank
from xbench.encoders.weights import WeightsUnavailableError, seeded, use_pretrained

log = logging.getLogger(__name__)

CHECKPOINT_ENV = "XBENCH_CAPTIONSTEW_CHECKPOINT"
WEIGHT_FILES = ("pretrained.safetensors", "model.safetensors", "pretrained.pt", "model.pt")  # Auden's order
MIN_SAMPLES = 1360  # 9 fbank frames: the fewest that give one encoder frame
_PARENTS = ("audio_encoder", "speech_encoder", "encoder")


def fbank(wave: torch.Tensor) -> torch.Tensor:
    """``[B, W]`` 16 kHz waveform in [-1, 1] -> ``[B, (W + 80) // 160, 80]`` Kaldi log-mel (Auden settings)."""
    return kaldi_fbank(wave, 80, sample_frequency=16000.0, dither=0.0, snip_edges=False, high_freq=-400.0)


def _weight_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"CaptionStew checkpoint {path} not found")
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{path}: none of {', '.join(WEIGHT_FILES)} inside")


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor] | None:
    """The entries under ``prefix`` with it removed, or None when no key has it (Auden's rule)."""
    if not any(k.startswith(prefix) for k in state):
        return None
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_auden_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], ZipformerConfig]:
    """Encoder state dict and config of an Auden model directory (or a weight file beside its ``config.json``)."""
    weights = _weight_file(Path(path).expanduser())
    config_file = weights.parent / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} not found: an Auden checkpoint directory holds config.json")
    raw: dict[str, Any] = json.loads(config_file.read_text())
    parent = next((p for p in _PARENTS if isinstance(raw.get(f"{p}_config"), dict)), None)
    encoder_config = raw[f"{parent}_config"] if parent else raw
    if encoder_config.get("model_type", "zipformer") != "zipformer":
        raise ValueError(f"{config_file}: encoder model_type {encoder_config.get('model_type')!r} is not a zipformer")
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: dict[str, torch.Tensor] = load_file(str(weights))
    else:
        obj = load_torch_checkpoint(weights, mmap=False)
        state = obj["state_dict"] if isinstance(obj, dict) and "state_dict" in obj else obj
    state = _strip(state, "module.") or state
    if parent is not None:
        for prefix in (f"{parent}.",) + tuple(f"{p}." for p in _PARENTS):
            stripped = _strip(state, prefix)
            if stripped:
                state = stripped
                break
    return state, ZipformerConfig.from_dict(encoder_config)


def save_auden_checkpoint(
    model: ZipformerModel,
    folder: str | Path,
    parent: str | None = None,
    extra_config: dict[str, Any] | None = None,
    extra_state: dict[str, torch.Tensor] | None = None,
    file_name: str = "model.safetensors",
) -> Path:
    """Write ``model`` as an Auden model directory; returns the weight file.

    ``parent=None`` writes a bare encoder (``model_type`` ``zipformer``); ``parent="audio_encoder"``
    nests the encoder config and keys as a composite model does (``extra_config`` and ``extra_state``
    add the other fields and weights, e.g. a CLAP model's text side). ``.safetensors`` or ``.pt``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if parent is not None:
        config = {f"{parent}_config": config, **(extra_config or {})}
        state = {f"{parent}.{k}": v for k, v in state.items()}
    state.update({k: v.detach().cpu().contiguous() for k, v in (extra_state or {}).items()})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    path = folder / file_name
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def build_model(
    checkpoint: str | Path | None = None, config: ZipformerConfig | None = None, seed: int = 0
) -> tuple[ZipformerModel, str]:
    """A :class:`ZipformerModel` and where its weights came from (``checkpoint=None``: seeded random ``config``)."""
    if checkpoint is None:
        with seeded(seed):
            model = ZipformerModel(config or ZIPFORMER_M)
        return model, f"random (seed {seed})"
    state, loaded = load_auden_checkpoint(checkpoint)
    model = ZipformerModel(loaded)
    model.load_state_dict(state, strict=True)  # raises naming every missing / unexpected key
    return model, str(checkpoint)


class CaptionStewEncoder(nn.Module):
    """CaptionStew Zipformer-M (Auden) for X-ARES: ``[B, W]`` 16 kHz -> ``[B, T, 512]`` at 40 ms.

    Clips longer than ``chunk_seconds`` are encoded in chunks (the harness's 10 s by default; Auden
    trained on up to 30 s) and the frames concatenated; a chunk shorter than 85 ms is zero-padded
    to that length and its frames trimmed to those of its real length (at least one).
    """

    sampling_rate = 16000
    hop_size_in_ms = 40
    output_dim = 512
    card_name = "captionstew-zipformer-m"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        pretrained: bool | None = None,
        chunk_seconds: float = 10.0,
    ) -> None:
        super().__init__()
        if checkpoint is None:
            pretrained = use_pretrained(pretrained)
            if pretrained:
                checkpoint = os.environ.get(CHECKPOINT_ENV) or None
                if checkpoint is None:
                    raise WeightsUnavailableError(
                        f"zoo encoder {self.card_name!r}: no CaptionStew weights are public; pass a local Auden "
                        f"checkpoint directory (config.json + model.safetensors or pretrained.pt) as "
                        f"CaptionStewEncoder(checkpoint=...) or in ${CHECKPOINT_ENV}"
                    )
        self.model, self.weights_source = build_model(checkpoint)
        if checkpoint is None:
            log.warning("%s: random weights (%s)", type(self).__name__, self.weights_source)
        self.output_dim = self.model.output_dim
        self.chunk_samples = max(MIN_SAMPLES, int(chunk_seconds * self.sampling_rate))
        self.eval()

    def _encode(self, audio: torch.Tensor) -> torch.Tensor:
        real = audio.shape[-1]
        if real < MIN_SAMPLES:
            audio = torch.nn.functional.pad(audio, (0, MIN_SAMPLES - real))
        out, _ = self.model(fbank(audio))
        return out[:, : max(1, output_frames((real + 80) // 160))]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        chunks = audio.split(self.chunk_samples, dim=-1)
        return torch.cat([self._encode(chunk) for chunk in chunks], dim=1)
