"""CaptionStew audio-language pretrained Zipformer encoders (Tencent AI Lab / Auden): card, model, wrapper.

* :mod:`.zipformer`: icefall's Zipformer2 as configured by Auden, in plain torch, state-dict
  compatible with Auden checkpoints;
* :mod:`.encoder`: the X-ARES wrapper ``CaptionStewEncoder`` and the Auden checkpoint loader/writer;
* :mod:`.pretrain`: CLAP-style contrastive pretraining (Zipformer + small BERT text encoder, InfoNCE).

No CaptionStew checkpoint is public (as of the zoo research): the card has no weight URL and the
wrapper loads a local Auden checkpoint directory (``checkpoint=`` or ``$XBENCH_CAPTIONSTEW_CHECKPOINT``).
``XBENCH_RANDOM_WEIGHTS=1`` (set by the tests) builds seeded random weights instead.
"""

from __future__ import annotations

from xbench.encoders.card import ZooCard

CITATION = (
    "Wei-Cheng Tseng, Xuanru Zhou, Mingyue Huo, Yiwen Shao, Hao Zhang, Dong Yu. Revisiting Audio-language "
    "Pretraining for Learning General-purpose Audio Representation. arXiv:2511.16757"
)
ZIPFORMER_M_PARAMETERS = 65_913_719

CARDS = [
    ZooCard(
        name="captionstew-zipformer-m",
        family="captionstew",
        factory="xbench.encoders.captionstew.encoder:CaptionStewEncoder",
        sampling_rate=16000,
        hop_size_in_ms=40,
        output_dim=512,
        parameters=ZIPFORMER_M_PARAMETERS,
        licence="Apache-2.0 (Auden training code); no CaptionStew weights released",
        training_data=(
            "CaptionStew: 10.7 M captions of 9.3 M clips (about 37,290 h) aggregated from AudioCaps, WavCaps, "
            "AudioSetCaps, MusicCaps, ParaSpeechCaps, JamendoMaxCaps and others (contrastive or captioning)"
        ),
        citation=CITATION,
        weights_url=None,
        weights_file=None,
        description=(
            "Zipformer-M audio encoder of the CaptionStew audio-language models (Auden's default Zipformer "
            "config; the paper's exact config is unverified), 80-bin fbank, 40 ms frames, 512-d. No CaptionStew "
            "weights are public: pass a local Auden checkpoint directory via $XBENCH_CAPTIONSTEW_CHECKPOINT or "
            "CaptionStewEncoder(checkpoint=...); xbench.encoders.captionstew.pretrain trains one."
        ),
    ),
]
