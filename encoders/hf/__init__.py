"""transformers baselines: wav2vec 2.0, data2vec-audio, HuBERT, WavLM and the Whisper encoder, as in X-ARES.

* :mod:`.encoder`: ``HFAudioEncoder(model_id_or_path, layer=-1)`` for any wav2vec2-style model
  (``AutoModel``), with the feature extractor's normalisation in torch, plus the named X-ARES entries;
* :mod:`.whisper`: the Whisper encoder with ``WhisperFeatureExtractor``'s log-mel in plain torch, its
  true 20 ms hop, and outputs trimmed to the input's length instead of 30 s of padding.

Weights come from Hugging Face model ids (``weights_hub``; no single-file URL):
a local folder (``model_id_or_path``, or ``$XBENCH_HF_<NAME>``), else the Hugging Face cache
(``$HF_HOME``), else a download unless offline. ``XBENCH_RANDOM_WEIGHTS=1`` (set by the tests) builds
each model from a config written in code with the real architecture's sizes, without any download.
"""

from __future__ import annotations

from xbench.encoders.card import ZooCard

# card name -> (Hugging Face model id, factory class)
MODELS = {
    "wav2vec2-large-100k-voxpopuli": ("facebook/wav2vec2-large-100k-voxpopuli", "Wav2Vec2LargeVoxPopuliEncoder"),
    "data2vec-audio-base": ("facebook/data2vec-audio-base", "Data2VecAudioBaseEncoder"),
    "hubert-base": ("facebook/hubert-base-ls960", "HubertBaseEncoder"),
    "wavlm-base-plus": ("microsoft/wavlm-base-plus", "WavLMBasePlusEncoder"),
    "whisper-base": ("openai/whisper-base", "WhisperBaseEncoder"),
}


def env_name(card_name: str) -> str:
    """``XBENCH_HF_<NAME>``: the variable that points a card at a local copy of its model folder."""
    return "XBENCH_HF_" + card_name.upper().replace("-", "_").replace(".", "_")


def _card(name: str, module: str, dim: int, params: int, licence: str, data: str, citation: str, what: str) -> ZooCard:
    model_id, factory = MODELS[name]
    return ZooCard(
        name=name,
        family="hf",
        factory=f"xbench.encoders.hf.{module}:{factory}",
        sampling_rate=16000,
        hop_size_in_ms=20,
        output_dim=dim,
        parameters=params,
        licence=licence,
        training_data=data,
        citation=citation,
        weights_url=None,
        weights_hub=model_id,  # the model folder, resolved by encoder.resolve_model_folder
        weights_file=None,
        description=(
            f"{what} (transformers, Hugging Face {model_id}). Weights: a local copy via ${env_name(name)} or the "
            f"Hugging Face cache ($HF_HOME), downloaded by transformers when online."
        ),
    )


CARDS = [
    _card(
        "wav2vec2-large-100k-voxpopuli",
        "encoder",
        1024,
        315_438_720,
        "CC-BY-NC-4.0",
        "VoxPopuli 100k hours of unlabelled European Parliament speech, 23 languages (self-supervised)",
        "Changhan Wang, Morgane Riviere, Ann Lee, Anne Wu, Chaitanya Talnikar, Daniel Haziza, Mary Williamson, "
        "Juan Pino, Emmanuel Dupoux. VoxPopuli: A Large-Scale Multilingual Speech Corpus for Representation "
        "Learning, Semi-Supervised Learning and Interpretation. ACL 2021. arXiv:2101.00390",
        "wav2vec 2.0 Large (24 layers, 1024-d), last hidden state at 20 ms; X-ARES's wav2vec2 baseline",
    ),
    _card(
        "data2vec-audio-base",
        "encoder",
        768,
        93_164_288,
        "Apache-2.0",
        "LibriSpeech 960 h (self-supervised)",
        "Alexei Baevski, Wei-Ning Hsu, Qiantong Xu, Arun Babu, Jiatao Gu, Michael Auli. data2vec: A General "
        "Framework for Self-supervised Learning in Speech, Vision and Language. ICML 2022. arXiv:2202.03555",
        "data2vec-audio Base (12 layers, 768-d), last hidden state at 20 ms; X-ARES's data2vec baseline",
    ),
    _card(
        "hubert-base",
        "encoder",
        768,
        94_371_712,
        "Apache-2.0",
        "LibriSpeech 960 h (self-supervised)",
        "Wei-Ning Hsu, Benjamin Bolte, Yao-Hung Hubert Tsai, Kushal Lakhotia, Ruslan Salakhutdinov, Abdelrahman "
        "Mohamed. HuBERT: Self-Supervised Speech Representation Learning by Masked Prediction of Hidden Units. "
        "IEEE/ACM TASLP 2021. arXiv:2106.07447",
        "HuBERT Base (12 layers, 768-d), last hidden state at 20 ms",
    ),
    _card(
        "wavlm-base-plus",
        "encoder",
        768,
        94_381_936,
        "MIT (microsoft/unilm; the model card's licence is unverified)",
        "94k hours: Libri-Light 60k, GigaSpeech 10k, VoxPopuli 24k (self-supervised)",
        "Sanyuan Chen et al. WavLM: Large-Scale Self-Supervised Pre-Training for Full Stack Speech Processing. "
        "IEEE JSTSP 2022. arXiv:2110.13900",
        "WavLM Base+ (12 layers, 768-d, gated relative position bias), last hidden state at 20 ms",
    ),
    _card(
        "whisper-base",
        "whisper",
        512,
        20_590_592,
        "MIT",
        "680k hours of multilingual weakly supervised audio-transcript pairs",
        "Alec Radford, Jong Wook Kim, Tao Xu, Greg Brockman, Christine McLeavey, Ilya Sutskever. Robust Speech "
        "Recognition via Large-Scale Weak Supervision. ICML 2023. arXiv:2212.04356",
        "Whisper base encoder only (6 layers, 512-d) at its true 20 ms hop, frames trimmed to the input length "
        "(X-ARES's whisper example declares 10 ms and keeps 30 s of padding)",
    ),
]
