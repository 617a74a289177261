"""``hf:ORG/NAME[@REVISION]`` and ``hf:/local/folder``: a transformers audio model as an X-ARES encoder.

:func:`load_hf_encoder` resolves the model (a local folder, else the Hugging Face cache, else a
download through ``huggingface_hub`` unless offline), records the revision as the commit hash of the
snapshot it loads, reads the model's config and picks the family adapter from it:

* a convolutional waveform front end (``conv_kernel``/``conv_stride``: wav2vec 2.0, HuBERT, WavLM,
  data2vec-audio, UniSpeech, SEW, wav2vec2-conformer, MERT): :class:`~.encoder.HFAudioEncoder`, hop =
  product of the strides at the preprocessor's sampling rate;
* ``whisper``: :class:`~.whisper.HFWhisperEncoder` (20 ms, frames trimmed to the input);
* ``audio-spectrogram-transformer``: :class:`HFASTEncoder`, the patch tokens of each time step averaged
  over frequency (hop = ``time_stride`` x 10 ms);
* ``clap``: :class:`HFClapAudioEncoder`, the audio tower's final feature map averaged over frequency
  (``T'`` steps per 10 s input: 32, i.e. 312.5 ms, for HTSAT);
* ``encodec``: :class:`HFEncodecEncoder`, the convolutional encoder's continuous output before
  quantisation (hop = product of ``upsampling_ratios`` samples);
* any other ``AutoModel`` whose folder or model type declares an audio feature extractor:
  :class:`HFGenericEncoder`, the extractor's features into the model, the hop measured from the
  frame counts of a 1 s and a 2 s input.

A model whose config names remote code (``auto_map``) loads only with ``trust_remote_code=True``
(``--trust-remote-code``): its repository's Python files run in this process.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xbench.encoder.contract import EncoderLoadError
from xbench.encoders.hf.layers import LAST, Layer, check_layer, config_digest, only_last, parse_layer, select_hidden

PREFIX = "hf:"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
CHUNK_SECONDS = 10.0


class HFModelError(EncoderLoadError):
    """An ``hf:`` model that cannot be used (not found, not audio, remote code without consent, bad layer)."""


# --------------------------------------------------------------------------------------------------
# Naming and resolving
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HFSource:
    """Where an ``hf:`` model came from: the hub id (None for a local folder), its folder and commit hash."""

    repo_id: str | None
    folder: Path
    commit: str | None

    @property
    def display_name(self) -> str:
        """``hf:ORG/NAME@<12 hex of the commit>``, or ``hf:<folder name>`` for a local folder."""
        base = f"{PREFIX}{self.repo_id or self.folder.name}"
        return f"{base}@{self.commit[:12]}" if self.commit else base

    def describe(self) -> dict[str, Any]:
        """What the encoder identity records (never the local path)."""
        return {"model": self.repo_id, "revision": self.commit}


def is_hf_spec(text: str) -> bool:
    """Whether ``text`` names an ``hf:`` model."""
    return text.startswith(PREFIX)


def parse_hf_spec(text: str) -> tuple[str, str | None, bool]:
    """``hf:ORG/NAME[@REV]`` -> (id, revision, False); ``hf:/folder`` -> (folder, None, True)."""
    body = text.removeprefix(PREFIX)
    if not body:
        raise HFModelError(f"{text!r}: name a model, hf:ORG/NAME[@REVISION] or hf:/path/to/folder")
    local = Path(body).expanduser()
    if body.startswith(("/", ".", "~")) or local.is_dir():
        if not local.is_dir():
            raise HFModelError(f"{text}: no such model folder {local}")
        return str(local), None, True
    repo, at, revision = body.partition("@")
    if not _REPO_ID.match(repo) or (at and not revision):
        raise HFModelError(f"{text!r}: expected hf:ORG/NAME[@REVISION] or hf:/path/to/folder")
    return repo, revision or None, False


def snapshot_commit(folder: Path) -> str | None:
    """The commit hash of a Hugging Face cache snapshot folder (``.../snapshots/<commit>``), else None."""
    folder = folder.resolve()
    return folder.name if _COMMIT.match(folder.name) and folder.parent.name == "snapshots" else None


def resolve_source(text: str, trust_remote_code: bool = False, offline: bool | None = None) -> HFSource:
    """The folder and commit of ``hf:...``: a local folder, the Hugging Face cache, or a download."""
    from xbench.encoders.hf.encoder import resolve_model_folder
    from xbench.encoders.weights import WeightsUnavailableError

    model, revision, local = parse_hf_spec(text)
    if local:
        folder = Path(model)
        return HFSource(None, folder, snapshot_commit(folder))
    try:
        folder = resolve_model_folder(model, offline=offline, revision=revision, code=trust_remote_code)
    except WeightsUnavailableError as exc:
        raise HFModelError(str(exc)) from exc
    commit = snapshot_commit(folder)
    if revision and _COMMIT.match(revision) and commit and commit != revision:
        raise HFModelError(f"{text}: asked for commit {revision}, the hub snapshot is {commit}")
    return HFSource(model, folder, commit)


def remote_code_files(folder: Path) -> dict[str, str]:
    """sha256 of every Python file of a model folder (the remote code a trusted model runs)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.py"))}


def _raw_config(folder: Path, text: str) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise HFModelError(f"{text}: {folder} holds no config.json (a transformers model folder, e.g. save_pretrained)")
    try:
        raw = json.loads(path.read_text())
    except ValueError as exc:
        raise HFModelError(f"{text}: {path} is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise HFModelError(f"{text}: {path} is not a JSON object")
    return raw


# --------------------------------------------------------------------------------------------------
# Family adapters
# --------------------------------------------------------------------------------------------------


class _ExtractorEncoder(nn.Module):
    """A model fed by its transformers feature extractor (numpy, per clip), in chunks of ``chunk_samples``."""

    def __init__(self, model: nn.Module, extractor: Any, layer: Layer, source: str) -> None:
        super().__init__()
        self.model = model
        self.extractor = extractor
        self.layer = layer
        self.weights_source = source
        self.sampling_rate = int(extractor.sampling_rate)
        self.chunk_samples = int(CHUNK_SECONDS * self.sampling_rate)
        self._accepts = set(inspect.signature(model.forward).parameters)
        self.identity_settings: dict[str, Any] = {
            "layer": layer,
            "config_sha256": config_digest(model.config),
            "extractor_sha256": config_digest(extractor.to_dict()),
        }

    def _inputs(self, chunk: torch.Tensor, **options: Any) -> dict[str, torch.Tensor]:
        arrays = list(chunk.detach().to("cpu", torch.float32).numpy())
        inputs = self.extractor(arrays, sampling_rate=self.sampling_rate, return_tensors="pt", **options)
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in inputs.items() if k in self._accepts}

    def _encode(self, chunk: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        return torch.cat([self._encode(chunk) for chunk in audio.split(self.chunk_samples, dim=-1)], dim=1)


class HFASTEncoder(_ExtractorEncoder):
    """Audio Spectrogram Transformer: 128-bin Kaldi fbank patches; per time step the frequency patches averaged.

    A chunk holds at most ``max_length`` fbank frames (10 ms hop, 25 ms window); its frames are the
    time steps whose patches start inside the real input: ``ceil(fbank frames / time_stride)``.
    """

    def __init__(self, model: nn.Module, extractor: Any, layer: Layer, source: str) -> None:
        config = model.config
        layer = check_layer(layer, int(config.num_hidden_layers) + 1, "AST")
        super().__init__(model, extractor, layer, source)
        if int(extractor.max_length) != int(config.max_length) or extractor.num_mel_bins != config.num_mel_bins:
            raise HFModelError(
                f"AST: the feature extractor ({extractor.max_length} frames x {extractor.num_mel_bins} bins) does not "
                f"match the model ({config.max_length} x {config.num_mel_bins})"
            )
        self.freq_steps, self.time_steps = model.embeddings.get_shape(config)
        self.time_stride = int(config.time_stride)
        self.hop_size_in_ms = 10.0 * self.time_stride
        self.output_dim = int(config.hidden_size)
        self.window, self.shift = self.sampling_rate // 40, self.sampling_rate // 100  # 25 ms, 10 ms
        self.chunk_samples = (int(config.max_length) - 1) * self.shift + self.window

    def _encode(self, chunk: torch.Tensor) -> torch.Tensor:
        real = chunk.shape[-1]
        if real < self.window:
            chunk = torch.nn.functional.pad(chunk, (0, self.window - real))
        values = self._inputs(chunk)["input_values"]
        hidden = select_hidden(lambda s: self.model(input_values=values, output_hidden_states=s), self.layer)
        patches = hidden[:, -self.freq_steps * self.time_steps :]
        steps = patches.reshape(len(chunk), self.freq_steps, self.time_steps, -1).mean(dim=1)
        fbank_frames = 1 + (max(real, self.window) - self.window) // self.shift
        return steps[:, : min(self.time_steps, max(1, math.ceil(fbank_frames / self.time_stride)))]


class HFClapAudioEncoder(_ExtractorEncoder):
    """CLAP's audio tower (HTSAT): the final feature map averaged over frequency, ``T'`` steps per 10 s chunk.

    Each chunk (at most the extractor's ``max_length_s``, 10 s at 48 kHz) is repeat-padded by the
    extractor as in training, and its frames trimmed to those covering the real input. ``is_longer`` is
    always False (chunks never exceed the maximum), so fusion models never take their random-crop path.
    """

    def __init__(self, model: nn.Module, extractor: Any, layer: Layer, source: str) -> None:
        super().__init__(model, extractor, only_last(layer, "CLAP audio tower"), source)
        config = model.config
        freq_ratio = config.spec_size // config.num_mel_bins
        self.steps = config.spec_size // config.patch_stride[1] // 2 ** (len(config.depths) - 1) * freq_ratio
        self.chunk_samples = int(extractor.nb_max_samples)
        self.hop_size_in_ms = 1000.0 * self.chunk_samples / self.sampling_rate / self.steps
        self.output_dim = int(config.hidden_size)
        self.truncation = "fusion" if config.enable_fusion else "rand_trunc"  # the input layout the model expects

    def _encode(self, chunk: torch.Tensor) -> torch.Tensor:
        real = chunk.shape[-1]
        inputs = self._inputs(chunk, truncation=self.truncation)
        inputs["is_longer"] = torch.zeros_like(inputs["is_longer"], dtype=torch.bool)
        fmap = self.model(**inputs).last_hidden_state  # [B, C, frequency, T']
        frames = fmap.mean(dim=2).transpose(1, 2)
        return frames[:, : min(self.steps, max(1, math.ceil(real * self.steps / self.chunk_samples)))]


class HFEncodecEncoder(nn.Module):
    """EnCodec's convolutional encoder: ``[B, W]`` -> ``[B, ceil(W / hop), hidden]``, before quantisation.

    Mono input is repeated over the model's ``audio_channels``; with ``normalize`` (the 48 kHz model)
    each chunk is divided by its RMS, as ``EncodecModel.encode`` does. Chunks of 10 s.
    """

    def __init__(self, model: nn.Module, layer: Layer, source: str) -> None:
        super().__init__()
        config = model.config
        self.encoder = model.encoder
        self.layer = only_last(layer, "EnCodec encoder")
        self.weights_source = source
        self.sampling_rate = int(config.sampling_rate)
        self.hop_samples = math.prod(config.upsampling_ratios)
        self.hop_size_in_ms = 1000.0 * self.hop_samples / self.sampling_rate
        self.output_dim = int(config.hidden_size)
        self.channels = int(config.audio_channels)
        self.normalize = bool(config.normalize)
        self.chunk_samples = int(CHUNK_SECONDS * self.sampling_rate)
        self.identity_settings = {"layer": LAST, "config_sha256": config_digest(config)}

    def _encode(self, chunk: torch.Tensor) -> torch.Tensor:
        x = chunk.unsqueeze(1).expand(-1, self.channels, -1)
        if self.normalize:
            x = x / (x.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True) + 1e-8).sqrt()
        out = self.encoder(x).transpose(1, 2)
        return out[:, : max(1, math.ceil(chunk.shape[-1] / self.hop_samples))]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        return torch.cat([self._encode(chunk) for chunk in audio.split(self.chunk_samples, dim=-1)], dim=1)


class HFGenericEncoder(_ExtractorEncoder):
    """Any ``AutoModel`` with an audio feature extractor returning ``[B, T, D]`` hidden states.

    The hop is measured when built: ``1000 / (frames(2 s) - frames(1 s))`` ms; a model whose frame count
    does not grow with its input (fixed-length padding) is refused. Encoder-decoder models use their encoder.
    """

    def __init__(self, model: nn.Module, extractor: Any, layer: Layer, source: str, who: str) -> None:
        super().__init__(model, extractor, layer, source)
        self.who = who
        with torch.inference_mode():
            one, two = (self._hidden(torch.zeros(1, n * self.sampling_rate), LAST) for n in (1, 2))
            probe = self.model(**self._inputs(torch.zeros(1, self.sampling_rate)), output_hidden_states=True)
        states = len(probe.hidden_states)
        if two.shape[1] <= one.shape[1]:
            raise HFModelError(
                f"{who}: its output has {one.shape[1]} frames for 1 s and {two.shape[1]} for 2 s of audio; a "
                "model whose frame count does not follow its input length needs its own adapter"
            )
        self.layer = check_layer(layer, states, who)
        self.identity_settings["layer"] = self.layer
        self.hop_size_in_ms = 1000.0 / (two.shape[1] - one.shape[1])
        self.output_dim = int(one.shape[-1])

    def _hidden(self, chunk: torch.Tensor, layer: Layer) -> torch.Tensor:
        inputs = self._inputs(chunk)
        hidden = select_hidden(lambda s: self.model(**inputs, output_hidden_states=s), layer)
        if hidden.ndim != 3:
            raise HFModelError(f"{self.who}: hidden states of shape {list(hidden.shape)}, expected [B, T, D]")
        return hidden

    def _encode(self, chunk: torch.Tensor) -> torch.Tensor:
        return self._hidden(chunk, self.layer)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _audio_extractor(folder: Path, model_type: str, trust: bool) -> Any:
    """The folder's (or the model type's) audio feature extractor, or None."""
    from transformers import AutoFeatureExtractor, SequenceFeatureExtractor
    from transformers.models.auto.feature_extraction_auto import FEATURE_EXTRACTOR_MAPPING_NAMES

    if not (folder / "preprocessor_config.json").is_file() and model_type not in FEATURE_EXTRACTOR_MAPPING_NAMES:
        return None
    try:
        extractor = AutoFeatureExtractor.from_pretrained(str(folder), trust_remote_code=trust)
    except (OSError, ValueError, KeyError):
        return None
    return extractor if isinstance(extractor, SequenceFeatureExtractor) else None


def build_from_folder(folder: Path, layer: Layer, trust: bool, who: str) -> nn.Module:
    """The family adapter of the transformers model in ``folder`` (see the module docstring)."""
    import transformers
    from transformers import AutoConfig, AutoModel

    from xbench.encoders.hf.encoder import HFAudioEncoder, has_conv_front_end
    from xbench.encoders.hf.whisper import HFWhisperEncoder

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust)
    kind = config.model_type
    if kind == "whisper":
        return HFWhisperEncoder(folder, layer=layer, pretrained=True)
    if has_conv_front_end(config):
        return HFAudioEncoder(folder, layer=layer, pretrained=True, trust_remote_code=trust)
    extractor = None if kind == "encodec" else _audio_extractor(folder, kind, trust)
    if kind not in ("audio-spectrogram-transformer", "clap", "clap_audio_model", "encodec") and extractor is None:
        raise HFModelError(
            f"{who}: model_type {kind!r} is not an audio model here (no audio feature extractor in its folder or "
            "type); supported: wav2vec2-style CNN front ends, whisper, audio-spectrogram-transformer, clap, encodec, "
            "and any model with an audio feature extractor"
        )
    model = AutoModel.from_pretrained(str(folder), dtype=torch.float32, trust_remote_code=trust).eval()
    source = str(folder)
    if kind == "audio-spectrogram-transformer":
        extractor = extractor or transformers.ASTFeatureExtractor(
            num_mel_bins=config.num_mel_bins, max_length=config.max_length
        )
        return HFASTEncoder(model, extractor, layer, source)
    if kind in ("clap", "clap_audio_model"):
        tower = getattr(model, "audio_model", model)
        return HFClapAudioEncoder(tower, extractor or transformers.ClapFeatureExtractor(), layer, source)
    if kind == "encodec":
        return HFEncodecEncoder(model, layer, source)
    if getattr(config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
        model = model.get_encoder()
    return HFGenericEncoder(model, extractor, layer, source, who)


def load_hf_encoder(text: str, layer: int | str | None = None, trust_remote_code: bool = False) -> nn.Module:
    """The encoder ``hf:ORG/NAME[@REVISION]`` or ``hf:/folder`` names, with its source recorded.

    Sets ``display_name`` (``hf:ORG/NAME@<commit>``) and adds the model id, commit hash and (trusted)
    remote code's sha256 to ``identity_settings``. Errors are :class:`HFModelError` (one line).
    """
    from xbench.encoders.hf.layers import LayerError

    source = resolve_source(text, trust_remote_code)
    raw = _raw_config(source.folder, text)
    if raw.get("auto_map") and not trust_remote_code:
        raise HFModelError(
            f"{text}: the model's config runs code from its repository (auto_map: "
            f"{', '.join(sorted(raw['auto_map']))}); pass --trust-remote-code if you trust that code"
        )
    try:
        encoder = build_from_folder(source.folder, parse_layer(layer), trust_remote_code, text)
    except (HFModelError, LayerError) as exc:
        raise HFModelError(str(exc)) from exc
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HFModelError(f"{text}: the model in {source.folder} cannot be loaded: {message}") from exc
    settings = dict(getattr(encoder, "identity_settings", {}))
    settings.update(source.describe())
    if trust_remote_code and raw.get("auto_map"):
        settings["remote_code_sha256"] = remote_code_files(source.folder)
    encoder.identity_settings = settings
    encoder.display_name = source.display_name
    return encoder
