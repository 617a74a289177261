"""Once installed, `xbench` is the only top-level import name (no stray `tasks` or `encoders`)."""

import shutil
import subprocess
import sys
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


@pytest.mark.slow
def test_wheel_in_fresh_venv_exposes_only_xbench(tmp_path):
    # build from a copy of the tracked files: building in place would leave an xbench.egg-info in the
    # checkout whose stale entry points shadow the editable install's
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("xbench-*.whl")
    env_dir = tmp_path / "venv"
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
    new = {p.name for p in site.iterdir()} - before
    assert {n for n in new if not n.endswith(".dist-info")} == {"xbench"}, new
    assert (site / "xbench" / "encoders" / "baselines.py").is_file()
    assert (site / "xbench" / "tasks" / "__init__.py").is_file()
    out = subprocess.run([py, "-c", PROBE], check=True, capture_output=True, text=True, cwd=tmp_path).stdout.split()
    assert out[0].startswith(str(site)) and out[1] == "True" and out[2] == "None"


def test_editable_install_maps_encoders_and_tasks_under_xbench(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True, cwd=tmp_path)
    encoders_file, no_encoders, tasks_origin = out.stdout.split()
    assert Path(encoders_file) == ROOT / "encoders" / "__init__.py"
    assert no_encoders == "True"
    # the dev venv holds the X-ARES oracle, whose wheel ships a top-level `tasks`; it must not be ours
    assert tasks_origin == "None" or not tasks_origin.startswith(str(ROOT))
