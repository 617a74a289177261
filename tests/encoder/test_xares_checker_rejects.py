"""X-ARES 0.1.3's checker rejects what ``xares/audio_encoder_checker.py`` rejects, check by check.

Each encoder below fails exactly one of X-ARES's checks and passes every other one, so dropping that
check from xbench's copy turns its verdict to True. The expected verdicts are read from X-ARES's source
(written out here) and, where the package is installed, compared with the package itself.
"""

from __future__ import annotations

import pytest
import torch

from xbench.encoder.xares_checker import XARES_CHECK_NAMES, check_audio_encoder, xares_checks

from conftest import require_oracle


def _frames(audio: torch.Tensor, dim: int = 8) -> torch.Tensor:
    """``[B, W]`` -> ``[B, W // 1000, dim]``: a valid encoder output."""
    b, w = audio.shape
    return audio[:, : (w // 1000) * 1000].reshape(b, -1, 1000)[..., :dim].contiguous()


class ReferenceEncoder(torch.nn.Module):
    """Passes every check (the control)."""

    output_dim, sampling_rate, hop_size_in_ms = 8, 16000, 62.5

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return _frames(audio)


class FirstClipOnlyEncoder(ReferenceEncoder):
    """Returns one clip's frames for a batch of two: ``[1, T, D]``."""

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return _frames(audio)[:1]


class PlainObjectEncoder:
    """Has the attributes and a working ``__call__``, but is not a ``torch.nn.Module``."""

    output_dim, sampling_rate, hop_size_in_ms = 8, 16000, 62.5

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        return _frames(audio)


class TensorLike:
    """Quacks like a ``[B, T, D]`` tensor (ndim, dim(), size(i), shape) but is not one."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self._t = tensor
        self.ndim = tensor.ndim
        self.shape = tensor.shape

    def dim(self) -> int:
        return self._t.dim()

    def size(self, i: int | None = None):
        return self._t.size() if i is None else self._t.size(i)


class TensorLikeOutputEncoder(ReferenceEncoder):
    def forward(self, audio: torch.Tensor) -> TensorLike:
        return TensorLike(_frames(audio))


# name -> (X-ARES's verdict, the check that fails, in xbench's check names)
CASES = {
    "ReferenceEncoder": (True, None),
    "FirstClipOnlyEncoder": (False, "xares.batch_preserved"),
    "PlainObjectEncoder": (False, "xares.is_module"),
    "TensorLikeOutputEncoder": (False, "xares.output_is_tensor"),
}
CLASSES = {c.__name__: c for c in (ReferenceEncoder, FirstClipOnlyEncoder, PlainObjectEncoder, TensorLikeOutputEncoder)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_and_failing_check(name):
    verdict, failing = CASES[name]
    assert check_audio_encoder(CLASSES[name]()) is verdict
    results = xares_checks(CLASSES[name]())
    assert [r.name for r in results] == list(XARES_CHECK_NAMES)
    statuses = {r.name: r.status for r in results}
    if failing is None:
        assert set(statuses.values()) == {"pass"}
    else:
        at = XARES_CHECK_NAMES.index(failing)
        assert [statuses[n] for n in XARES_CHECK_NAMES] == ["pass"] * at + ["fail"] + ["skip"] * (9 - at)


def test_each_case_fails_only_its_own_check():
    """Past the failing check every other X-ARES condition holds, so that check alone decides."""
    audio = torch.randn(2, 50000)
    assert isinstance(FirstClipOnlyEncoder()(audio), torch.Tensor) and FirstClipOnlyEncoder()(audio).ndim == 3
    assert FirstClipOnlyEncoder()(audio).size(2) == FirstClipOnlyEncoder.output_dim
    plain = PlainObjectEncoder()(audio)
    assert plain.shape == (2, 50, 8) and not isinstance(PlainObjectEncoder(), torch.nn.Module)
    duck = TensorLikeOutputEncoder()(audio)
    assert (duck.ndim, duck.size(0), duck.size(2)) == (3, 2, TensorLikeOutputEncoder.output_dim)


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_verdict_as_the_xares_package(name):
    xares = require_oracle("xares.audio_encoder_checker")
    assert xares.check_audio_encoder(CLASSES[name]()) is CASES[name][0]
