"""Dasheng (Xiaomi) masked-autoencoder audio encoders: zoo cards, model, X-ARES wrappers, MAE pretraining.

* :mod:`.model`: the encoder in plain torch, state-dict compatible with the ``dasheng`` package;
* :mod:`.encoder`: X-ARES wrappers (``DashengEncoder``, ``Dasheng06BEncoder``, ``Dasheng12BEncoder``)
  and checkpoint loading (Zenodo ``{"model", "config"}`` ``.pt`` and HF ``model.safetensors``);
* :mod:`.pretrain`: MAE pretraining (encoder + small decoder, patch-normalised MSE on masked patches).

Cards are plain data; building an encoder fetches its weights lazily (see :mod:`.encoder` for the
``XBENCH_RANDOM_WEIGHTS`` switch the tests use).
"""

from __future__ import annotations

from xbench.encoders.card import ZooCard

_ZENODO = "https://zenodo.org/records/11511780/files/{}?download=1"
_CITATION = (
    "Heinrich Dinkel, Zhiyong Yan, Yongqing Wang, Junbo Zhang, Yujun Wang, Bin Wang. Scaling up masked audio "
    "encoder learning for general audio classification. Interspeech 2024. arXiv:2406.06992"
)
_DATA = "272k hours: ACAV100M, AudioSet, VGGSound, MTG-Jamendo (self-supervised, no labels)"


def _card(name: str, factory: str, dim: int, params: int, file: str, shape: str) -> ZooCard:
    return ZooCard(
        name=name,
        family="dasheng",
        factory=f"xbench.encoders.dasheng.encoder:{factory}",
        sampling_rate=16000,
        hop_size_in_ms=40,
        output_dim=dim,
        parameters=params,
        licence="Apache-2.0",
        training_data=_DATA,
        citation=_CITATION,
        weights_url=_ZENODO.format(file),
        weights_sha256=None,  # not published; the download is not checksum-verified
        weights_file=file,
        description=f"Dasheng {shape} MAE encoder, 64-band log-mel, 40 ms frames, 10.08 s attention chunks.",
    )


CARDS = [
    _card("dasheng-base", "DashengEncoder", 768, 85_447_808, "dasheng_base.pt", "base (768-d, 12 layers)"),
    _card("dasheng-0.6b", "Dasheng06BEncoder", 1280, 630_333_568, "dasheng_06b.pt", "0.6B (1280-d, 32 layers)"),
    _card("dasheng-1.2b", "Dasheng12BEncoder", 1536, 1_134_047_360, "dasheng_12b.pt", "1.2B (1536-d, 40 layers)"),
]
