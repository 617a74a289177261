"""Once installed, `xbench` is the only top-level import name (no stray `tasks` or `encoders`), and the
package data it reads at run time (X-ARES's published table) is inside the wheel."""

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import importlib.util as u, xbench, xbench.encoders, xbench.tasks;"
    "print(xbench.encoders.__file__);"
    "print(u.find_spec('encoders') is None);"
    "print(getattr(u.find_spec('tasks'), 'origin', None))"
)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """(venv python, its site-packages, names the wheel added there): the wheel built from a copy of the
    tracked files and installed --no-deps into a fresh venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    # build from a copy of the tracked files: building in place would leave an xbench.egg-info in the
    # checkout whose stale entry points shadow the editable install's
    src = tmp / "src"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    wheels = tmp / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("xbench-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [py, "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    before = {p.name for p in site.iterdir()}
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    return py, site, {p.name for p in site.iterdir()} - before


@pytest.mark.slow
def test_wheel_in_fresh_venv_exposes_only_xbench(wheel_venv, tmp_path):
    py, site, new = wheel_venv
    assert {n for n in new if not n.endswith(".dist-info")} == {"xbench"}, new
    assert (site / "xbench" / "encoders" / "baselines.py").is_file()
    assert (site / "xbench" / "tasks" / "__init__.py").is_file()
    out = subprocess.run([py, "-c", PROBE], check=True, capture_output=True, text=True, cwd=tmp_path).stdout.split()
    assert out[0].startswith(str(site)) and out[1] == "True" and out[2] == "None"


@pytest.mark.slow
def test_wheel_leaderboard_published_outside_the_checkout(wheel_venv, tmp_path):
    py, site, _ = wheel_venv
    assert (site / "xbench" / "report" / "data" / "xares_published.csv").is_file()
    # the third-party dependencies come from this environment's site-packages, added as a plain path
    # (after the venv's own, and without running its .pth files, so the editable xbench stays invisible)
    pth = site / "zz_dev_site.pth"
    pth.write_text(sysconfig.get_paths()["purelib"] + "\n")
    try:
        _published_from_the_wheel(py, site, tmp_path / "elsewhere")
    finally:
        pth.unlink()  # this environment holds a top-level `tasks` (the X-ARES oracle): keep it out of the other test


def _published_from_the_wheel(py: Path, site: Path, work: Path) -> None:
    work.mkdir()
    (work / "mine.csv").write_text(
        "encoder,task,formal_name,domain,track,normalised,weight,protocol\n"
        "mine,esc50,ESC-50,sound,mlp,0.5,400,xares\nmine,esc50,ESC-50,sound,knn,0.25,400,xares\n"
    )
    probe = (
        "import xbench.report.leaderboard as lb;"
        "print(lb.__file__);"
        "pub = lb.load_published('v0.1.3');"
        "print(len(pub), pub[(pub.encoder == 'dasheng') & (pub.task == 'librispeech')].score.iloc[0])"
    )
    out = subprocess.run([py, "-c", probe], check=True, capture_output=True, text=True, cwd=work).stdout.split()
    assert out[0].startswith(str(site)), out
    assert out[1:] == [str(4 * (27 + 20)), "0.724"]  # 4 encoders x (27 MLP + 20 kNN); the v0.1.3 LibriSpeech value
    xbench = py.parent / "xbench"
    cmd = [xbench, "leaderboard", "mine.csv", "--published", "--out", "board.csv"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "| ESC-50 | 0.500 | 0.857 | 0.510 | 0.528 | 0.229 |" in proc.stdout  # mine, then the README's MLP row
    long = (work / "board-long.csv").read_text()
    assert long.count("\ndasheng,") == 27 + 20 and long.count("\nmine,") == 2


def test_editable_install_maps_encoders_and_tasks_under_xbench(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True, cwd=tmp_path)
    encoders_file, no_encoders, tasks_origin = out.stdout.split()
    assert Path(encoders_file) == ROOT / "encoders" / "__init__.py"
    assert no_encoders == "True"
    # the dev venv holds the X-ARES oracle, whose wheel ships a top-level `tasks`; it must not be ours
    assert tasks_origin == "None" or not tasks_origin.startswith(str(ROOT))
