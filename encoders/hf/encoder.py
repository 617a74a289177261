"""``HFAudioEncoder``: any wav2vec2-style transformers audio model as an X-ARES encoder, and the named entries.

Supported through ``AutoModel`` / ``AutoConfig``: every model whose config declares a convolutional
feature encoder over the raw waveform (``conv_kernel``, ``conv_stride``): wav2vec 2.0, data2vec-audio,
HuBERT, WavLM, UniSpeech(-SAT), SEW(-D), wav2vec2-conformer, and remote-code models such as MERT. The
sampling rate is the folder's ``preprocessor_config.json`` ``sampling_rate`` (16 kHz when absent), the hop
the product of the convolution strides (320 samples: 20 ms at 16 kHz). ``layer`` picks the hidden state
(:mod:`.layers`: ``"last"`` / ``-1``, an index of ``hidden_states``, or ``"mean"``).

Normalisation is ``Wav2Vec2FeatureExtractor``'s, in torch: with ``do_normalize`` each clip is scaled
to zero mean and unit variance (``(x - mean) / sqrt(var + 1e-7)``) over its real samples. The flag is
read from the model folder's ``preprocessor_config.json`` when there is one, else from the model's
known default (``DO_NORMALIZE``), else from the family default (``FAMILY_DO_NORMALIZE``).

Long inputs are cut into ``chunk_seconds`` chunks (10 s, as X-ARES's examples), each normalised and
encoded on its own; a trailing chunk under 1 s is zero-padded to 1 s (as X-ARES does) and, unlike
X-ARES, its frames are trimmed to those of its real length. A clip shorter than the CNN's receptive
field (400 samples) is padded to it and gives one frame.

Weights (see :func:`resolve_model_folder`): a local folder, ``$XBENCH_HF_<NAME>``, the Hugging Face
cache (``$HF_HOME``), or a download unless offline (``XBENCH_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``).
``pretrained=False`` or ``XBENCH_RANDOM_WEIGHTS=1`` builds seeded random weights from the reference
config written in :func:`reference_config` (or a local folder's ``config.json``), with no download.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    Data2VecAudioConfig,
    HubertConfig,
    PretrainedConfig,
    PreTrainedModel,
    Wav2Vec2Config,
    WavLMConfig,
    WhisperConfig,
)

from xbench.encoders.hf import MODELS, env_name
from xbench.encoders.hf.layers import Layer, check_layer, config_digest, parse_layer, select_hidden
from xbench.encoders.weights import OFFLINE_ENV, WeightsUnavailableError, env_flag, seeded, use_pretrained

log = logging.getLogger(__name__)

SUPPORTED_TYPES = ("wav2vec2", "data2vec-audio", "hubert", "wavlm")  # the named entries' families (any CNN front works)
# preprocessor_config.json values of the named models (HuBERT base: fairseq's `normalize: false`
# pretraining setting; the Hugging Face file's value is unverified)
DO_NORMALIZE = {
    "facebook/wav2vec2-large-100k-voxpopuli": True,
    "facebook/data2vec-audio-base": True,
    "facebook/hubert-base-ls960": False,
    "microsoft/wavlm-base-plus": False,
}
FAMILY_DO_NORMALIZE = {"wav2vec2": True, "data2vec-audio": True, "hubert": False, "wavlm": False}
_IDS = {model_id: name for name, (model_id, _) in MODELS.items()}


def offline_requested() -> bool:
    """True when ``XBENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to anything but ``""``/``0``."""
    return env_flag(OFFLINE_ENV) or env_flag("HF_HUB_OFFLINE")


def reference_config(model_id: str) -> PretrainedConfig:
    """The architecture of a named model id, written in code (no download)."""
    if model_id == "facebook/wav2vec2-large-100k-voxpopuli":
        return Wav2Vec2Config(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            conv_bias=True,
        )
    if model_id == "facebook/data2vec-audio-base":
        return Data2VecAudioConfig()  # transformers' defaults are data2vec-audio-base's
    if model_id == "facebook/hubert-base-ls960":
        return HubertConfig()
    if model_id == "microsoft/wavlm-base-plus":
        return WavLMConfig()  # conv_bias False, group norm, 320 buckets, max distance 800
    if model_id == "openai/whisper-base":
        return WhisperConfig(
            d_model=512,
            encoder_layers=6,
            encoder_attention_heads=8,
            encoder_ffn_dim=2048,
            decoder_layers=6,
            decoder_attention_heads=8,
            decoder_ffn_dim=2048,
            num_mel_bins=80,
            max_source_positions=1500,
            vocab_size=51865,
        )
    raise KeyError(f"no reference config for {model_id!r}; known: {', '.join(sorted(_IDS))}")


def resolve_model_folder(
    model_id_or_path: str | Path,
    env: str | None = None,
    offline: bool | None = None,
    revision: str | None = None,
    code: bool = False,
) -> Path:
    """A local folder holding the model: the path itself, ``$env``, the HF cache, or a download.

    ``revision`` (a branch, tag or commit) picks the hub revision; the folder of a hub model is its
    snapshot folder, named by the commit hash. ``code`` also fetches the repository's ``*.py`` files
    (remote code). Raises :class:`WeightsUnavailableError` naming the model id and where to put a local copy.
    """
    path = Path(model_id_or_path).expanduser()
    if path.is_dir():
        return path
    model_id = str(model_id_or_path)
    env = env or (env_name(_IDS[model_id]) if model_id in _IDS else None)
    if env and os.environ.get(env):
        folder = Path(os.environ[env]).expanduser()
        if not folder.is_dir():
            raise WeightsUnavailableError(f"${env} = {folder} is not a folder (expected a copy of {model_id})")
        return folder
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_id, revision=revision, local_files_only=True))
    except Exception:  # not in the cache (any hub error means the same here)
        pass
    where = f"${env} or " if env else ""
    at = f" at revision {revision!r}" if revision else ""
    hint = (
        f"Hugging Face model {model_id!r}{at} is not available locally; point {where}$HF_HOME at a local copy "
        f"(a folder with config.json and model.safetensors or pytorch_model.bin, e.g. from save_pretrained)"
    )
    offline = offline_requested() if offline is None else offline
    if offline:
        raise WeightsUnavailableError(hint)
    extra = ["*.py"] if code else []
    try:  # huggingface_hub: resumed downloads, progress bars, the cache layout users know
        patterns = ["*.json", "*.safetensors", *extra]
        folder = Path(snapshot_download(model_id, revision=revision, allow_patterns=patterns))
        if not list(folder.glob("*.safetensors")):
            patterns = ["*.json", "pytorch_model.bin", *extra]
            folder = Path(snapshot_download(model_id, revision=revision, allow_patterns=patterns))
        return folder
    except Exception as exc:
        raise WeightsUnavailableError(f"{hint}; download failed ({exc})") from exc


def preprocessor_config(folder: Path | None) -> dict[str, Any]:
    """``folder/preprocessor_config.json`` as a dict (``{}`` when there is none)."""
    path = None if folder is None else folder / "preprocessor_config.json"
    return json.loads(path.read_text()) if path is not None and path.is_file() else {}


def read_do_normalize(folder: Path | None, model_id: str, model_type: str) -> bool:
    """``do_normalize`` from ``folder/preprocessor_config.json``, else the model's or family's default."""
    raw = preprocessor_config(folder)
    if "do_normalize" in raw:
        return bool(raw["do_normalize"])
    return DO_NORMALIZE.get(model_id, FAMILY_DO_NORMALIZE.get(model_type, False))


def normalise(wave: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per row: ``Wav2Vec2FeatureExtractor``'s ``do_normalize`` (eps 1e-7)."""
    mean = wave.mean(dim=-1, keepdim=True)
    var = wave.var(dim=-1, keepdim=True, unbiased=False)
    return (wave - mean) / torch.sqrt(var + 1e-7)


def random_model(config: PretrainedConfig, seed: int = 0) -> PreTrainedModel:
    """``AutoModel.from_config(config)`` with seeded random weights."""
    with seeded(seed):
        return AutoModel.from_config(config)


def has_conv_front_end(config: PretrainedConfig) -> bool:
    """Whether ``config`` declares a convolutional feature encoder over the raw waveform (wav2vec2-style)."""
    return all(isinstance(getattr(config, k, None), list | tuple) for k in ("conv_kernel", "conv_stride"))


class HFAudioEncoder(nn.Module):
    """A transformers wav2vec2-style model as an X-ARES encoder: ``[B, W]`` -> ``[B, T, hidden]``, 20 ms at 16 kHz."""

    sampling_rate = 16000
    hop_size_in_ms = 20
    output_dim = 768

    def __init__(
        self,
        model_id_or_path: str | Path,
        layer: Layer | None = -1,
        pretrained: bool | None = None,
        do_normalize: bool | None = None,
        chunk_seconds: float = 10.0,
        seed: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        model_id = str(model_id_or_path)
        pretrained = use_pretrained(pretrained)
        folder = None
        if pretrained:
            folder = resolve_model_folder(model_id_or_path, getattr(self, "env", None), code=trust_remote_code)
            model = AutoModel.from_pretrained(str(folder), dtype=torch.float32, trust_remote_code=trust_remote_code)
            source = str(folder)
        else:
            local = Path(model_id).expanduser()
            folder = local if local.is_dir() else None
            config = AutoConfig.from_pretrained(str(local)) if folder else reference_config(model_id)
            model = random_model(config, seed)
            source = f"random (seed {seed})"
            log.warning("%s: random weights (%s)", type(self).__name__, source)
        self._setup(model, model_id, folder, layer, do_normalize, chunk_seconds, source)

    @classmethod
    def from_model(
        cls,
        model: PreTrainedModel,
        layer: Layer | None = -1,
        do_normalize: bool | None = None,
        chunk_seconds: float = 10.0,
    ) -> HFAudioEncoder:
        """Wrap an already built model (e.g. one being trained or just saved)."""
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self._setup(model, str(model.config.name_or_path), None, layer, do_normalize, chunk_seconds, "in memory")
        return self

    def _setup(
        self,
        model: PreTrainedModel,
        model_id: str,
        folder: Path | None,
        layer: Layer | None,
        do_normalize: bool | None,
        chunk_seconds: float,
        source: str,
    ) -> None:
        config = model.config
        model_type = config.model_type
        if not has_conv_front_end(config):
            hint = " (use xbench.encoders.hf.whisper.HFWhisperEncoder)" if model_type == "whisper" else ""
            raise ValueError(
                f"{model_id}: model_type {model_type!r} has no convolutional waveform front end (conv_kernel, "
                f"conv_stride) as {', '.join(SUPPORTED_TYPES)} have{hint}"
            )
        self.model = model
        self.model_id = model_id
        self.layer = check_layer(parse_layer(layer), int(config.num_hidden_layers) + 1, model_id)
        self.weights_source = source
        self.do_normalize = read_do_normalize(folder, model_id, model_type) if do_normalize is None else do_normalize
        self.sampling_rate = int(preprocessor_config(folder).get("sampling_rate", type(self).sampling_rate))
        self.hop_size_in_ms = 1000 * math.prod(config.conv_stride) / self.sampling_rate
        self.output_dim = int(config.hidden_size)
        self.chunk_samples = int(chunk_seconds * self.sampling_rate)
        self.receptive_field = self.frames_to_samples()
        self.identity_settings = {
            "layer": self.layer,
            "do_normalize": self.do_normalize,
            "chunk_seconds": chunk_seconds,
            "config_sha256": config_digest(config),
        }
        self.eval()

    def frames(self, samples: int) -> int:
        """Frames the convolutional feature encoder gives for ``samples`` samples."""
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride, strict=True):
            samples = max(0, (samples - kernel) // stride + 1)
        return samples

    def frames_to_samples(self) -> int:
        """Fewest samples that give one frame (the CNN's receptive field, 400 for the usual stack)."""
        needed = 1
        layers = list(zip(self.model.config.conv_kernel, self.model.config.conv_stride, strict=True))
        for kernel, stride in reversed(layers):
            needed = (needed - 1) * stride + kernel
        return needed

    def _hidden(self, wave: torch.Tensor) -> torch.Tensor:
        return select_hidden(lambda states: self.model(wave, output_hidden_states=states), self.layer)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        chunks = audio.split(self.chunk_samples, dim=-1)
        pad_to = self.sampling_rate if len(chunks) > 1 else self.receptive_field
        outputs = []
        for chunk in chunks:
            real = chunk.shape[-1]
            if self.do_normalize:
                chunk = normalise(chunk)
            if real < pad_to:
                chunk = torch.nn.functional.pad(chunk, (0, pad_to - real))
            outputs.append(self._hidden(chunk)[:, : max(1, self.frames(real))])
        return torch.cat(outputs, dim=1)


class _NamedEncoder(HFAudioEncoder):
    """A named zoo entry: its model id, card and ``XBENCH_HF_<NAME>`` variable are class attributes."""

    card_name = ""
    env = None

    def __init__(
        self, model_id_or_path: str | Path | None = None, layer: Layer | None = -1, pretrained: bool | None = None
    ):
        model_id = MODELS[self.card_name][0]
        config_file = Path(model_id_or_path).expanduser() / "config.json" if model_id_or_path else None
        if config_file is not None and config_file.is_file():  # a folder given as this entry's weights (--weights)
            expected = reference_config(model_id).model_type
            found = json.loads(config_file.read_text()).get("model_type")
            if found != expected:  # refused from its config, before any weights are loaded
                from xbench.encoder.contract import EncoderLoadError

                raise EncoderLoadError(
                    f"{model_id_or_path}: a transformers {found} model, but zoo entry {self.card_name} is a "
                    f"{expected} model: refused; --encoder hf:{model_id_or_path} loads it as itself"
                )
        super().__init__(model_id_or_path or model_id, layer=layer, pretrained=pretrained)


class Wav2Vec2LargeVoxPopuliEncoder(_NamedEncoder):
    """facebook/wav2vec2-large-100k-voxpopuli (X-ARES's wav2vec2 baseline): 1024-d, 20 ms."""

    output_dim = 1024
    card_name = "wav2vec2-large-100k-voxpopuli"
    env = env_name(card_name)


class Data2VecAudioBaseEncoder(_NamedEncoder):
    """facebook/data2vec-audio-base (X-ARES's data2vec baseline): 768-d, 20 ms."""

    card_name = "data2vec-audio-base"
    env = env_name(card_name)


class HubertBaseEncoder(_NamedEncoder):
    """facebook/hubert-base-ls960: 768-d, 20 ms."""

    card_name = "hubert-base"
    env = env_name(card_name)


class WavLMBasePlusEncoder(_NamedEncoder):
    """microsoft/wavlm-base-plus: 768-d, 20 ms."""

    card_name = "wavlm-base-plus"
    env = env_name(card_name)
