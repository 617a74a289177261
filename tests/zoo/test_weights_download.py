"""Zoo weight downloads: the project's fetcher against the loopback fake Zenodo (an interrupted transfer and a
killed process's partial file both resume with HTTP Range), the sha256 recorded on first download and verified
after, Hugging Face hub weights through huggingface_hub, and ``xbench zoo ls``'s weight columns."""

import hashlib
import json

import numpy as np
import pytest
from fake_zenodo import FakeZenodo

from xbench.cli import main
from xbench.encoders.card import ZooCard
from xbench.encoders.weights import (
    WeightsChecksumError,
    WeightsUnavailableError,
    fetch_weights,
    record_path,
    recorded_sha256,
)

from conftest import require_optional

RECORD = 4242
PAYLOAD = np.random.default_rng(0).integers(0, 256, 3 * 2**20, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _card(**weights) -> ZooCard:
    return ZooCard(
        name="toy", family="t", factory="m:f", sampling_rate=16000, hop_size_in_ms=10, output_dim=4, **weights
    )


@pytest.fixture
def zenodo():
    with FakeZenodo() as fake:
        fake.add_record(RECORD, {"toy.pt": PAYLOAD})
        yield fake


def _zenodo_card(fake: FakeZenodo, **extra) -> ZooCard:
    return _card(weights_url=fake.url + fake.file_path(RECORD, "toy.pt"), weights_file="toy.pt", **extra)


def test_interrupted_download_resumes_and_records_the_sha256(tmp_path, zenodo):
    zenodo.cut_after["toy.pt"] = (2**20 + 12345, 1)  # the first transfer breaks after 1 MiB and a bit
    path = fetch_weights(_zenodo_card(zenodo), tmp_path, offline=False, progress=False, backoff=0.0)
    assert path == tmp_path / "toy" / "toy.pt" and path.read_bytes() == PAYLOAD
    content = zenodo.file_path(RECORD, "toy.pt")
    assert [r for p, r in zenodo.ranges if p == content] == [None, f"bytes={2**20 + 12345}-"]
    assert zenodo.requests[zenodo.record_path(RECORD)] == 1  # the record's size and md5 checked the transfer
    record = json.loads(record_path(path).read_text())
    assert record["sha256"] == SHA and record["size"] == len(PAYLOAD) and record["source"].endswith("/content")
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob("*.claim"))
    assert fetch_weights(_zenodo_card(zenodo), tmp_path, offline=True) == path  # cached and verified: no network


def test_a_killed_downloads_partial_file_resumes(tmp_path, zenodo):
    part = tmp_path / "toy" / ".download" / "toy.pt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:700_000])  # what a killed process left
    path = fetch_weights(_zenodo_card(zenodo), tmp_path, offline=False, progress=False, backoff=0.0)
    assert path.read_bytes() == PAYLOAD and recorded_sha256(path) == SHA
    assert [r for p, r in zenodo.ranges if p.endswith("/content")] == ["bytes=700000-"]


def test_recorded_sha256_is_verified_after(tmp_path, zenodo):
    path = fetch_weights(_zenodo_card(zenodo), tmp_path, offline=False, progress=False, backoff=0.0)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match=rf"expected {SHA} \(the one recorded in .*toy.pt.sha256.json\)"):
        fetch_weights(_zenodo_card(zenodo), tmp_path, offline=True)


def test_card_checksum_and_corrupt_transfers(tmp_path, zenodo):
    with pytest.raises(WeightsChecksumError, match="expected 1111"):
        fetch_weights(_zenodo_card(zenodo, weights_sha256="1" * 64), tmp_path, offline=False, progress=False)
    assert not (tmp_path / "toy" / "toy.pt").exists() and not record_path(tmp_path / "toy" / "toy.pt").exists()
    zenodo.corrupt["toy.pt"] = 2  # both attempts flip a byte: the record's md5 refuses them
    with pytest.raises(WeightsUnavailableError, match="download failed .*corrupted download 'toy.pt'.*place toy.pt"):
        fetch_weights(_zenodo_card(zenodo), tmp_path / "b", offline=False, progress=False, backoff=0.0)
    path = fetch_weights(_zenodo_card(zenodo, weights_sha256=SHA), tmp_path / "c", offline=False, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_hub_weights_through_huggingface_hub(tmp_path, monkeypatch):
    import huggingface_hub

    hub_file = tmp_path / "hf-cache" / "snapshots" / "abc" / "epoch_latest.pt"
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(PAYLOAD)
    calls = []

    def download(repo, name, local_files_only=False):
        calls.append((repo, name, local_files_only))
        return str(hub_file)

    listing = ["README.md", "epoch_latest.pt", "config.yaml"]
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda self, repo: listing)
    card = _card(weights_hub="org/toy", weights_file="toy.pt")
    assert fetch_weights(card, tmp_path / "w", offline=False) == hub_file
    assert calls == [("org/toy", "epoch_latest.pt", False)]
    assert recorded_sha256(tmp_path / "w" / "toy" / "toy.pt") == SHA  # recorded beside the cache's name
    fixed = _card(weights_hub="org/toy", weights_hub_file="epoch_latest.pt", weights_file="toy.pt")
    assert fetch_weights(fixed, tmp_path / "w", offline=True) == hub_file
    assert calls[-1] == ("org/toy", "epoch_latest.pt", True)
    hub_file.write_bytes(PAYLOAD[:-1])
    with pytest.raises(WeightsChecksumError, match="recorded"):
        fetch_weights(fixed, tmp_path / "w", offline=True)
    listing.append("other.pt")
    with pytest.raises(WeightsUnavailableError, match=r"org/toy holds 2 \.pt files .*; place toy.pt"):
        fetch_weights(card, tmp_path / "x", offline=False)
    with pytest.raises(WeightsUnavailableError, match="offline: listing org/toy needs the network"):
        fetch_weights(card, tmp_path / "x", offline=True)


def test_zoo_ls_shows_weight_file_url_and_checksum(tmp_path, monkeypatch, capsys):
    from xbench.encoders.registry import get_card
    from xbench.encoders.weights import verify_weights

    monkeypatch.setenv("XBENCH_WEIGHTS", str(tmp_path))
    card = get_card("dasheng-base")
    placed = tmp_path / "dasheng-base" / "dasheng_base.pt"
    placed.parent.mkdir()
    placed.write_bytes(PAYLOAD)
    assert verify_weights(card, placed) == SHA  # recorded at first use
    assert main(["zoo", "ls", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["dasheng-base"]["checksum"] == f"{SHA} (recorded)"
    assert rows["dasheng-base"]["url"] == card.weights_url and rows["dasheng-base"]["weights_file"] == "dasheng_base.pt"
    assert rows["dasheng-0.6b"]["checksum"] == "-" and rows["logmel"]["url"] == ""
    assert rows["openbeats-base-i1"]["url"] == "hf:shikhar7ssu/OpenBEATs-Base-i1"
    assert rows["hubert-base"]["url"] == "hf:facebook/hubert-base-ls960"
    assert main(["zoo", "ls"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[-4:] == ["weight", "file", "sha256", "url"]
    line = next(row for row in table if row.startswith("dasheng-base "))
    assert f"dasheng_base.pt {SHA[:12]}… (recorded)" in " ".join(line.split()) and card.weights_url in line


def test_package_weights_are_checked_against_the_card(tmp_path, monkeypatch):
    from xbench.encoders.weights import verify_package_weights

    package = tmp_path / "toy_weights_pkg"
    (package / "assets").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    weights = package / "assets" / "w.bin"
    weights.write_bytes(PAYLOAD)
    monkeypatch.syspath_prepend(str(tmp_path))
    card = _card(package_weights=(("toy_weights_pkg/assets/w.bin", SHA),))
    assert verify_package_weights(card) == [weights]
    weights.write_bytes(PAYLOAD[:-1] + b"\0")  # another release's file, or a changed one
    with pytest.raises(WeightsChecksumError, match=f"{weights} .* the card pins {SHA}: another release"):
        verify_package_weights(card)
    weights.unlink()
    with pytest.raises(WeightsChecksumError, match="toy_weights_pkg has no toy_weights_pkg/assets/w.bin"):
        verify_package_weights(card)
    absent = _card(package_weights=(("no_such_pkg_here/w.bin", SHA),))
    assert verify_package_weights(absent) == []  # not installed: the encoder's own import says what to install
    for bad in ((("../w.bin", SHA),), (("pkg", SHA),), (("pkg/../w.bin", SHA),), (("pkg/w.bin", "abc"),)):
        with pytest.raises(ValueError, match="field 'package_weights'"):
            _card(package_weights=bad)
    with pytest.raises(ValueError, match="in a package or are downloaded, not both"):
        _card(package_weights=(("pkg/w.bin", SHA),), weights_file="w.bin", weights_url="http://x/w.bin")


@pytest.mark.parametrize("name", ["resemblyzer", "openwakeword", "crepe-tiny"])
def test_offline_cards_pin_their_wheels_weights(name, monkeypatch, capsys):
    import dataclasses

    import xbench.encoders.offline as offline
    from xbench.encoders.registry import get_card
    from xbench.encoders.weights import verify_package_weights

    card = get_card(name)
    require_optional(card.package_weights[0][0].split("/")[0])
    assert len(verify_package_weights(card)) == len(card.package_weights) > 0  # the installed files match
    wrong = dataclasses.replace(card, package_weights=((card.package_weights[0][0], "0" * 64),))
    monkeypatch.setattr(offline, "CARDS", [wrong if c.name == name else c for c in offline.CARDS])
    assert main(["check", "--encoder", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"the card pins {'0' * 64}" in err[0]
