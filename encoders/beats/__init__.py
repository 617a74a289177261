"""BEATs (Microsoft) and OpenBEATs (CMU / ESPnet) audio encoders: zoo cards, model, wrappers, pretraining.

* :mod:`.model`: the encoder in plain torch, loading Microsoft ``{"cfg", "model"}`` checkpoints,
  OpenBEATs ``{"cfg", "model"}`` checkpoints and ESPnet fine-tunes (``encoder.`` prefix);
* :mod:`.encoder`: X-ARES wrappers (160 ms frames: the 8 frequency tokens of a step averaged, or
  concatenated) and checkpoint loading;
* :mod:`.pretrain`: masked acoustic-token prediction with a random-projection tokenizer (iteration 1).

Cards are plain data; building an encoder fetches its weights lazily (``XBENCH_RANDOM_WEIGHTS=1``,
set by the tests, builds seeded random weights instead).
"""

from __future__ import annotations

from xbench.encoders.card import ZooCard

BEATS_CITATION = (
    "Sanyuan Chen, Yu Wu, Chengyi Wang, Shujie Liu, Daniel Tompkins, Zhuo Chen, Furu Wei. BEATs: Audio "
    "Pre-Training with Acoustic Tokenizers. ICML 2023. arXiv:2212.09058"
)
OPENBEATS_CITATION = (
    "Shikhar Bharadwaj et al. OpenBEATs: A Fully Open-Source General-Purpose Audio Encoder. arXiv:2507.14129"
)
_MS_BLOB = "https://msranlcmtteamdrive.blob.core.windows.net/share/BEATs/"
# Read-only shared-access links from the BEATs README (valid until 3022)
_MS_LINKS = {
    "BEATs_iter1.pt": "?sv=2020-08-04&st=2022-12-18T10%3A36%3A26Z&se=3022-12-19T10%3A36%3A00Z&sr=b&sp=r"
    "&sig=1ZFrgPlFFqWVPiIv2mbvijhKbgIhhhSREsVbJl3Q4hU%3D",
    "BEATs_iter2.pt": "?sv=2020-08-04&st=2022-12-18T10%3A38%3A08Z&se=3022-12-19T10%3A38%3A00Z&sr=b&sp=r"
    "&sig=cxLfGvwqxKAcM8gPYdb2%2BHjBN2khcP%2FO0VwTm%2B4oZqI%3D",
    "BEATs_iter3.pt": "?sv=2020-08-04&st=2022-12-18T10%3A38%3A57Z&se=3022-12-19T10%3A38%3A00Z&sr=b&sp=r"
    "&sig=Zo2EeinTCJsm4sH%2FjR03eYPdfT%2BLd0LBn%2FYIhj7ZQ7E%3D",
    "BEATs_iter3_plus_AS2M.pt": "?sv=2020-08-04&st=2022-12-18T10%3A40%3A53Z&se=3022-12-19T10%3A40%3A00Z&sr=b&sp=r"
    "&sig=SKBQMA7MRAMFv7Avyu8a4EkFOlkEhf8nF0Jc2wlYd%2B0%3D",
}
BASE_PARAMETERS = 90_311_792
LARGE_PARAMETERS = 311_376_576
# Hugging Face repositories of the OpenBEATs SSL checkpoints: the fetcher takes the repository's only .pt file
# (its name there is unverified; a repository with several asks for --weights)
OPENBEATS_REPOS = {
    f"openbeats-{size.lower()}-i{i}": f"https://huggingface.co/shikhar7ssu/OpenBEATs-{size}-i{i}"
    for size in ("Base", "Large")
    for i in (1, 2, 3)
}


def _beats(name: str, factory: str, file: str, what: str) -> ZooCard:
    return ZooCard(
        name=name,
        family="beats",
        factory=f"xbench.encoders.beats.encoder:{factory}",
        sampling_rate=16000,
        hop_size_in_ms=160,
        output_dim=768,
        parameters=BASE_PARAMETERS,
        licence="MIT",
        training_data="AudioSet-2M (self-supervised; labels unused)",
        citation=BEATS_CITATION,
        weights_url=_MS_BLOB + file + _MS_LINKS[file],
        weights_sha256=None,
        weights_file=file,
        description=f"Microsoft BEATs {what}; 128-bin fbank, 16x16 patches, 8 frequency tokens averaged per 160 ms.",
    )


def _openbeats(size: str, iteration: int, factory: str) -> ZooCard:
    name = f"openbeats-{size.lower()}-i{iteration}"
    large = size == "Large"
    return ZooCard(
        name=name,
        family="beats",
        factory=f"xbench.encoders.beats.encoder:{factory}",
        sampling_rate=16000,
        hop_size_in_ms=160,
        output_dim=1024 if large else 768,
        parameters=LARGE_PARAMETERS if large else BASE_PARAMETERS,
        licence="unverified (OpenBEATs code MIT; ESPnet fine-tunes CC-BY-4.0)",
        training_data="multi-domain mixture: speech, music, environmental sound, bioacoustics (self-supervised)",
        citation=OPENBEATS_CITATION,
        weights_url=None,
        weights_hub=OPENBEATS_REPOS[name].removeprefix("https://huggingface.co/"),  # the repository's only .pt
        weights_sha256=None,
        weights_file=f"OpenBEATs-{size}-i{iteration}.pt",
        description=(
            f"OpenBEATs-{size} iteration {iteration} ({'24 x 1024' if large else '12 x 768'}); weights from "
            f"{OPENBEATS_REPOS[name]}; 8 frequency tokens averaged per 160 ms."
        ),
    )


CARDS = [
    _beats("beats-iter1", "BEATsIter1Encoder", "BEATs_iter1.pt", "iteration 1 (random-projection tokenizer)"),
    _beats("beats-iter2", "BEATsIter2Encoder", "BEATs_iter2.pt", "iteration 2"),
    _beats("beats-iter3", "BEATsEncoder", "BEATs_iter3.pt", "iteration 3"),
    _beats("beats-iter3-plus-as2m", "BEATsIter3PlusAS2MEncoder", "BEATs_iter3_plus_AS2M.pt", "iteration 3+ (AS2M)"),
    _openbeats("Base", 1, "OpenBEATsBaseI1Encoder"),
    _openbeats("Base", 2, "OpenBEATsBaseI2Encoder"),
    _openbeats("Base", 3, "OpenBEATsBaseI3Encoder"),
    _openbeats("Large", 1, "OpenBEATsLargeI1Encoder"),
    _openbeats("Large", 2, "OpenBEATsLargeI2Encoder"),
    _openbeats("Large", 3, "OpenBEATsLargeI3Encoder"),
]
