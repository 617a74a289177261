import torch

from xbench.encoder.identity import encoder_fingerprint, encoder_identity, state_digest


class BNEncoder(torch.nn.Module):
    sampling_rate, output_dim, hop_size_in_ms = 16000, 4, 10

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(4)  # holds a 0-d int64 buffer (num_batches_tracked)


def test_digest_handles_zero_dim_buffers_and_tracks_weights():
    a, b = BNEncoder(), BNEncoder()
    assert state_digest(a) == state_digest(b)
    with torch.no_grad():
        b.bn.weight[0] = 2.0
    assert state_digest(a) != state_digest(b)
    b.bn.weight.data.copy_(a.bn.weight)
    b.bn.num_batches_tracked += 1
    assert state_digest(a) != state_digest(b)


def test_fingerprint_depends_on_options():
    enc = BNEncoder()
    one = encoder_fingerprint(encoder_identity(enc, {"chunk_seconds": 10}))
    two = encoder_fingerprint(encoder_identity(enc, {"chunk_seconds": None}))
    assert one != two


ENCODER_FILE = """
import torch
from idhelper_pkg.scale import GAIN
from idhelper_mod import offset


class HelperEncoder(torch.nn.Module):
    sampling_rate, output_dim, hop_size_in_ms = 16000, 2, 10

    def forward(self, audio):
        frames = audio.unfold(-1, 160, 160)[..., :2]
        return offset(frames * GAIN)
"""


def _helper_tree(folder):
    (folder / "idhelper_pkg").mkdir(parents=True)
    (folder / "idhelper_pkg" / "__init__.py").write_text("")
    (folder / "idhelper_pkg" / "scale.py").write_text("GAIN = 2.0\n")
    (folder / "idhelper_mod.py").write_text("from idhelper_deep import BIAS\n\n\ndef offset(x):\n    return x + BIAS\n")
    (folder / "idhelper_deep.py").write_text("BIAS = 1.0\n")
    (folder / "unrelated.py").write_text("X = 1\n")
    (folder / "enc.py").write_text(ENCODER_FILE)
    return folder / "enc.py"


def test_cache_key_follows_every_local_module_the_encoder_imports(tmp_path):
    import sys

    from xbench.embed.encode import plan_units
    from xbench.encoder.contract import load_encoder
    from xbench.taskspec.config import LabelSpec, TaskConfig

    encoder_file = _helper_tree(tmp_path / "enc")
    try:
        enc = load_encoder(encoder_file)
    finally:
        for name in ("idhelper_pkg", "idhelper_pkg.scale", "idhelper_mod", "idhelper_deep"):
            sys.modules.pop(name, None)
    assert enc(torch.ones(1, 320)).flatten().tolist() == [3.0] * 4  # the helpers are really used

    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}-0.tar").write_bytes(b"")
    task = TaskConfig(
        name="t", domain="sound", labels=LabelSpec("class", "y", classes=("a", "b")), output_dim=2, data_dir=str(data)
    )

    def cache_key():
        identity = encoder_identity(enc, {})
        return plan_units(task, data, tmp_path / "units", identity, "xbench")[0].key_hash, identity

    first, identity = cache_key()
    assert sorted(identity["local_sources_sha256"]) == [
        "idhelper_deep.py",
        "idhelper_mod.py",
        "idhelper_pkg/__init__.py",
        "idhelper_pkg/scale.py",
    ]
    (tmp_path / "enc" / "unrelated.py").write_text("X = 2\n")
    (tmp_path / "enc" / "notes.txt").write_text("not code\n")
    assert cache_key()[0] == first  # a file the encoder does not import: same key
    keys = {first}
    for helper, text in (
        ("idhelper_pkg/scale.py", "GAIN = 3.0\n"),  # a module of an imported package
        ("idhelper_mod.py", "from idhelper_deep import BIAS\n\n\ndef offset(x):\n    return x - BIAS\n"),
        ("idhelper_deep.py", "BIAS = 0.5\n"),  # imported by a helper, not by the encoder file
    ):
        (tmp_path / "enc" / helper).write_text(text)
        key = cache_key()[0]
        assert key not in keys, helper
        keys.add(key)


def test_an_unparsable_local_file_is_still_keyed_and_stops_packaging(tmp_path):
    import pytest

    from xbench.encoder.local_imports import scan_imports
    from xbench.submission import imports as submission_imports
    from xbench.submission.manifest import SubmissionError

    encoder_file = _helper_tree(tmp_path / "enc")
    broken = tmp_path / "enc" / "idhelper_pkg" / "legacy.py"
    broken.write_text("print 'python 2'\n")
    scan = scan_imports(encoder_file)
    assert broken.resolve() in scan.local_files
    assert len(scan.unparsable) == 1 and "legacy.py: cannot be parsed" in scan.unparsable[0]
    with pytest.raises(SubmissionError, match="legacy.py: cannot be parsed"):
        submission_imports.scan_imports(encoder_file)
