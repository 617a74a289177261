"""User checkpoints for zoo entries (``--weights PATH`` / ``NAME=PATH``): every layout recognised from its keys, a
family name taking its shape from the file, and the refusals (wrong family, wrong size, corrupt file, unknown
layout) as one ``error:`` line with exit code 2."""

import argparse
import json
import re

import pytest
import torch
from safetensors.torch import save_file
from test_beats import TINY as BEATS_TINY
from test_beats import _tiny_model as beats_model
from test_captionstew import _tiny_model as zipformer_model
from test_dasheng import TINY as DASHENG_TINY
from test_dasheng import _tiny_state as dasheng_state
from test_hf_encoders import TINY_CONFIGS

from xbench.cli import main
from xbench.encoder.contract import EncoderLoadError, load_encoder
from xbench.encoder.spec import EncoderSpec
from xbench.encoders.captionstew.encoder import save_auden_checkpoint
from xbench.encoders.checkpoints import LAYOUTS, CheckpointError, detect
from xbench.encoders.dasheng.model import FRONT_END_KEYS
from xbench.encoders.hf.encoder import random_model
from xbench.encoders.registry import build, family_names


def _zenodo(tmp_path):
    path = tmp_path / "dasheng_tiny.pt"
    torch.save({"model": dasheng_state(), "config": DASHENG_TINY.to_dict()}, path)
    return path


def _dasheng_config_json(folder):
    sizes = {k: DASHENG_TINY.to_dict()[k] for k in ("embed_dim", "depth", "num_heads", "target_length")}
    (folder / "config.json").write_text(json.dumps({"name": "dasheng-base", "encoder_kwargs": sizes}))


def _zenodo_bare(tmp_path):
    torch.save(dasheng_state(), tmp_path / "state.pt")
    _dasheng_config_json(tmp_path)  # a bare state dict of a width no release has: its heads from config.json
    return tmp_path / "state.pt"


def _hf_dasheng(tmp_path):
    state = {f"encoder.{k}": v for k, v in dasheng_state().items() if k not in FRONT_END_KEYS}
    save_file(state, str(tmp_path / "model.safetensors"))
    _dasheng_config_json(tmp_path)
    return tmp_path


def _microsoft(tmp_path):
    path = tmp_path / "BEATs_tiny.pt"
    torch.save({"cfg": BEATS_TINY.to_dict(), "model": beats_model().state_dict()}, path)
    return path


def _espnet(tmp_path):
    state = {f"encoder.{k}": v for k, v in beats_model().state_dict().items()}
    state["decoder.linear_out.weight"] = torch.zeros(5, 32)
    (tmp_path / "exp").mkdir()
    torch.save(state, tmp_path / "exp" / "valid.acc.best.pth")
    return tmp_path


def _auden(tmp_path):
    save_auden_checkpoint(zipformer_model(), tmp_path)
    return tmp_path


def _transformers(tmp_path):
    random_model(TINY_CONFIGS["hubert"]).save_pretrained(tmp_path)
    return tmp_path


LAYOUT_CASES = {
    "zenodo": (_zenodo, "dasheng"),
    "zenodo-bare": (_zenodo_bare, "dasheng"),
    "hf-dasheng": (_hf_dasheng, "dasheng"),
    "microsoft": (_microsoft, "beats"),
    "espnet": (_espnet, "beats"),
    "auden": (_auden, "captionstew"),
    "hf-transformers": (_transformers, "hf"),
}


def _one_error(capsys, argv):
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize("case", sorted(LAYOUT_CASES))
def test_every_layout_is_recognised_and_a_family_takes_its_shape(tmp_path, case):
    make, family = LAYOUT_CASES[case]
    path = make(tmp_path)
    layout = detect(path)
    assert layout.name == case.removesuffix("-bare") and layout.family == family
    if family in family_names():
        encoder = build(family, weights=path)
        assert encoder.weights_source.startswith(str(path))
        width = {"dasheng": 16, "beats": 32}.get(family) or encoder.model.output_dim
        assert encoder.output_dim == width < 512  # the file's width, not a card's
        with torch.no_grad():
            assert torch.isfinite(encoder(torch.randn(1, 16000) * 0.1)).all()


def test_accepted_layouts_cover_the_families():
    assert {layout.title for layout in LAYOUTS.values()} == {"Zenodo", "HF", "ESPnet", "Microsoft", "Auden"}
    assert family_names() == ["beats", "captionstew", "dasheng"]


# --- refusals --------------------------------------------------------------------------------------------------


def test_wrong_family_names_the_layout_and_what_the_entry_accepts(tmp_path, capsys):
    path = _microsoft(tmp_path)
    with pytest.raises(CheckpointError, match="a Microsoft checkpoint of the beats family, not dasheng; dasheng-base"):
        build("dasheng-base", weights=path)
    line = _one_error(capsys, ["check", "--encoder", f"dasheng-base={path}"])
    assert "accepts: Zenodo (" in line and "; HF (" in line and "Microsoft" in line
    assert "not beats" in _one_error(capsys, ["check", "--encoder", "beats", "--weights", str(_zenodo(tmp_path))])


def test_wrong_size_is_refused_unless_the_family_takes_the_shape(tmp_path, capsys):
    path = _zenodo(tmp_path)
    line = _one_error(capsys, ["check", "--encoder", "dasheng-base", "--weights", str(path)])
    assert "holds a 16-d dasheng encoder with" in line and "dasheng-base is 768-d with 85,447,808 parameters" in line
    assert f"`--encoder dasheng --weights {path}` takes the shape from the file" in line
    folder = _transformers(tmp_path / "hf")
    assert "hubert-base is 768-d" in _one_error(capsys, ["check", "--encoder", f"hubert-base={folder}"])
    # a model of another type is refused as such before its size is compared (it could match by chance)
    line = _one_error(capsys, ["check", "--encoder", f"wavlm-base-plus={folder}"])
    assert f"{folder}: a transformers hubert model, but zoo entry wavlm-base-plus is a wavlm model: refused" in line
    assert main(["check", "--encoder", f"dasheng={path}", "--long-seconds", "2", "--json"]) == 0


def test_the_cards_own_file_of_another_size_is_refused(tmp_path, monkeypatch):
    """A 16-d file placed under dasheng-base's cache name no longer builds a 16-d dasheng-base silently."""
    from xbench.encoders.dasheng.encoder import DashengEncoder
    from xbench.encoders.weights import record_path

    monkeypatch.setenv("XBENCH_WEIGHTS", str(tmp_path / "weights"))
    placed = tmp_path / "weights" / "dasheng-base" / "dasheng_base.pt"
    placed.parent.mkdir(parents=True)
    _zenodo(tmp_path).rename(placed)
    with pytest.raises(CheckpointError, match="zoo entry dasheng-base is 768-d"):
        DashengEncoder(pretrained=True)
    assert record_path(placed).is_file()  # its sha256 recorded at first use


@pytest.mark.parametrize("kind", ["truncated .pt", "garbage .safetensors", "unknown keys", "missing", "auden alone"])
def test_corrupt_unknown_and_missing_checkpoints_are_one_line(tmp_path, capsys, kind):
    if kind == "truncated .pt":
        data = _zenodo(tmp_path).read_bytes()
        path = tmp_path / "cut.pt"
        path.write_bytes(data[: len(data) // 2])
        expected = "not a readable checkpoint"
    elif kind == "garbage .safetensors":
        path = tmp_path / "model.safetensors"
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}" + bytes(64))
        expected = "not a readable safetensors file"
    elif kind == "unknown keys":
        path = tmp_path / "other.pt"
        torch.save({"fc.weight": torch.zeros(2, 2)}, path)
        expected = "layout not recognised (keys: fc.weight); accepted: Zenodo ("
    elif kind == "missing":
        path = tmp_path / "nothing.pt"
        expected = "no such checkpoint file or folder"
    else:
        weights = save_auden_checkpoint(zipformer_model(), tmp_path / "auden", file_name="model.pt")
        path = tmp_path / "model.pt"
        weights.rename(path)
        expected = "needs its config.json beside it"
    with pytest.raises(CheckpointError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        detect(path)
    line = _one_error(capsys, ["check", "--encoder", "dasheng-base", "--weights", str(path)])
    assert expected in line and line.startswith(f"error: {path}")
    if kind == "unknown keys":
        for title in ("Zenodo", "HF", "ESPnet", "Microsoft", "Auden"):
            assert f"{title} (" in line


class _Hyper:  # a training script's own class, pickled beside the weights
    lr = 1e-3


def test_pickled_training_arguments_load_and_other_objects_are_named(tmp_path, capsys):
    model = beats_model()
    with_args = tmp_path / "with_args.pt"  # fairseq/ESPnet-style: the training arguments pickled as a Namespace
    args = argparse.Namespace(lr=1e-3)
    torch.save({"cfg": BEATS_TINY.to_dict(), "model": model.state_dict(), "args": args}, with_args)
    assert detect(with_args).name == "microsoft"
    built = build("beats", weights=with_args)
    x = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = build("beats", weights=_microsoft(tmp_path))(x)
        assert torch.equal(built(x), reference)
    with_object = tmp_path / "with_object.pt"
    torch.save({"cfg": BEATS_TINY.to_dict(), "model": model.state_dict(), "hyper": _Hyper()}, with_object)
    expected = f"{with_object}: pickles the Python object {__name__}._Hyper, which xbench does not unpickle"
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        detect(with_object)
    line = _one_error(capsys, ["check", "--encoder", "beats", "--weights", str(with_object)])
    assert line.startswith(f"error: {expected}") and "\x1b" not in line and "corrupt" not in line


def test_weights_and_layer_only_where_they_apply(tmp_path, capsys):
    with pytest.raises(EncoderLoadError, match="'logmel' .* has no weights to replace"):
        load_encoder(EncoderSpec("logmel", weights=str(tmp_path)))
    with pytest.raises(EncoderLoadError, match="--layer applies to hf: models and the transformers zoo entries"):
        load_encoder(EncoderSpec("dasheng-base", layer=2))
    with pytest.raises(EncoderLoadError, match=r"family 'beats' takes its shape from a checkpoint.*beats-iter3"):
        load_encoder("beats")
    assert "not to an encoder file" in _one_error(capsys, ["check", "--encoder", __file__, "--weights", __file__])
    assert "weights given twice" in _one_error(
        capsys, ["check", "--encoder", f"dasheng={tmp_path}/a.pt", "--weights", f"{tmp_path}/b.pt"]
    )
