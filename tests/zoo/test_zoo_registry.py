"""Every zoo card: registered as an entry point, builds, matches its card, passes `xbench check`."""

import functools
import hashlib
import http.server
import threading

import pytest

from xbench.encoder.contract import load_encoder, zoo_entry_points
from xbench.encoder.deep_check import DeepCheckOptions, deep_check
from xbench.encoders.card import ZooCard, ZooCardError
from xbench.encoders.registry import all_cards
from xbench.encoders.weights import WeightsChecksumError, WeightsUnavailableError, fetch_weights

from conftest import OPTIONAL_CARDS, SLOW_ZOO_PARAMETERS, repeated_cards, require_optional

CARDS = all_cards()


def test_cards_and_entry_points_agree():
    points = zoo_entry_points()
    for name, card in CARDS.items():
        assert name in points, f"zoo card {name!r} has no entry point in group xbench.encoders"
        assert points[name].value == card.factory


FULL_CHECK = DeepCheckOptions(long_seconds=30.0)
# the default run's check of a large model: the same checks on shorter inputs (frames up to 10 s, a 12 s input,
# 2 x 5 s for throughput); the slow test below runs FULL_CHECK (frames at 60 s, a 30 s input) on those models
SHORT_CHECK = DeepCheckOptions(frame_durations=(0.5, 1.0, 10.0), long_seconds=12.0, throughput_clips=2,
                               throughput_seconds=5.0)  # fmt: skip
LARGE = 20_000_000  # parameters


def _checked_card(name: str, options: DeepCheckOptions | None) -> None:
    """The card's attributes and parameter count match the built encoder, and the deep check passes with
    ``options`` (None: FULL_CHECK for models under LARGE parameters, SHORT_CHECK above)."""
    card = CARDS[name]
    if name in OPTIONAL_CARDS:
        require_optional(OPTIONAL_CARDS[name])
    encoder = load_encoder(name)
    assert (encoder.sampling_rate, encoder.output_dim, encoder.hop_size_in_ms) == (
        card.sampling_rate,
        card.output_dim,
        card.hop_size_in_ms,
    )
    parameters = sum(p.numel() for p in encoder.parameters())
    if card.parameters is not None:
        assert parameters == card.parameters
    if options is None:
        options = SHORT_CHECK if parameters > LARGE else FULL_CHECK
    report = deep_check(encoder, options=options)
    assert report.ok, report.text()


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_matches_encoder_and_check_passes(name):
    _checked_card(name, None)


def _shortened() -> list[str]:
    """The cards whose default-run check is SHORT_CHECK: over LARGE parameters (or not declared), the first card
    of each architecture by name, up to SLOW_ZOO_PARAMETERS (larger ones and repeats are the same code)."""
    repeated = repeated_cards(CARDS)
    return [
        name
        for name, card in sorted(CARDS.items())
        if name not in repeated and (card.parameters is None or LARGE < card.parameters <= SLOW_ZOO_PARAMETERS)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("model", _shortened())
def test_large_card_passes_the_full_check_with_a_minute_of_audio(model):
    _checked_card(model, FULL_CHECK)


def test_optional_cards_are_the_cards_of_an_extra():
    assert {name for name, card in CARDS.items() if card.extra == "zoo-offline"} == set(OPTIONAL_CARDS)


def test_card_validation_names_field():
    with pytest.raises(ZooCardError, match="'output_dim'"):
        ZooCard(name="x", family="f", factory="m:f", sampling_rate=16000, hop_size_in_ms=10, output_dim=0)
    with pytest.raises(ZooCardError, match="'weights_file'"):
        ZooCard(name="x", family="f", factory="m:f", sampling_rate=1, hop_size_in_ms=1, output_dim=1, weights_url="u")


@pytest.fixture
def served(tmp_path):
    payload = b"weights" * 1000
    (tmp_path / "w.pt").write_bytes(payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/w.pt", hashlib.sha256(payload).hexdigest()
    server.shutdown()


def _card(url, sha):
    return ZooCard(
        name="toy",
        family="t",
        factory="m:f",
        sampling_rate=16000,
        hop_size_in_ms=10,
        output_dim=4,
        weights_url=url,
        weights_sha256=sha,
        weights_file="w.pt",
    )


def test_weights_download_verify_and_offline_message(served, tmp_path):
    url, sha = served
    cache = tmp_path / "cache"
    with pytest.raises(WeightsUnavailableError, match=r"place w.pt .* at .*cache/toy/w.pt"):
        fetch_weights(_card(url, sha), cache, offline=True)
    path = fetch_weights(_card(url, sha), cache, offline=False)
    assert path.read_bytes() == b"weights" * 1000
    assert fetch_weights(_card(url, sha), cache, offline=True) == path  # cached: no network needed
    with pytest.raises(WeightsChecksumError, match="expected 0000"):
        fetch_weights(_card(url, "0" * 64), tmp_path / "other", offline=False)
    assert not list((tmp_path / "other").rglob("*.part"))  # nothing half-written is left
