"""Deliberate faults the tests must catch: each is applied to a scratch copy of the repository, the tests
named for it run there, and at least one of them must fail.

The copy holds the checkout's tracked and untracked (not ignored) files (``--source worktree``, the
default) or the files of ``HEAD`` (``--source head``); ``xbench.encoders`` / ``xbench.tasks`` are linked
inside the copied package, so the copy imports nothing from the checkout (checked). First the unmutated
copy runs every named test; then each fault is applied alone, its tests run, and it is reverted. A fault
is caught when a test that passes unmutated fails (tests failing already, e.g. from work in progress in
the checkout, are listed and do not count).

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mutation_check.py [--only NAME ...] [--source head]``
(about a minute per ten faults on one thread). Exit 0 when every fault is caught, 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Fault:
    """Replace ``old`` by ``new`` in ``path``; ``tests`` must then fail.

    ``old`` and ``new`` may be tuples of alternatives (for code that changed shape): the first ``old`` that
    occurs exactly once is replaced by its ``new``.
    """

    name: str
    what: str
    path: str
    old: str | tuple[str, ...]
    new: str | tuple[str, ...]
    tests: tuple[str, ...]

    def apply(self, text: str) -> str | None:
        """``text`` with the fault applied, or None when no alternative occurs exactly once."""
        olds = (self.old,) if isinstance(self.old, str) else self.old
        news = (self.new,) if isinstance(self.new, str) else self.new
        for old, new in zip(olds, news, strict=True):
            if text.count(old) == 1:
                return text.replace(old, new)
        return None


PROBE_TESTS = ("tests/probes/test_best_weights.py", "tests/probes/test_probe.py")
CHECKER_TESTS = ("tests/encoder/test_xares_checker_rejects.py", "tests/encoder/test_audio_encoder_checker.py")
SCORE_TESTS = ("tests/scoring/test_hand_computed_scores.py", "tests/scoring/test_knn_and_scores.py")
KNN_TESTS = ("tests/probes/test_knn_recipe.py", "tests/scoring/test_knn_and_scores.py")

FAULTS = (
    Fault("probe-last-epoch", "the probe keeps the last epoch instead of the best", "xbench/probes/loop.py",
          ("    model.load_state_dict(best_state)\n", "    model.load_state_dict(best.state)\n"), ("", ""),
          PROBE_TESTS),
    Fault("probe-live-best", "best-on-valid keeps a live reference (so the last weights)", "xbench/probes/loop.py",
          ("best_epoch, best_state = score, epoch, copy.deepcopy(model.state_dict())",
           "self.state = copy.deepcopy(state)"),
          ("best_epoch, best_state = score, epoch, model.state_dict()", "self.state = state"), PROBE_TESTS),
    Fault("cache-ignores-hash", "the cache ignores the done-marker's key hash", "xbench/embed/cache.py",
          'return json.loads(marker.read_text()).get("key_hash") == expected_hash',
          'return isinstance(json.loads(marker.read_text()), dict)', ("tests/embed/test_embed_cache.py",)),
    Fault("checker-no-batch", "the X-ARES checker loses its batch-size check", "xbench/encoder/xares_checker.py",
          "if encoded.size(0) != sample_audio.size(0):", "if False:", CHECKER_TESTS),
    Fault("checker-no-module", "the X-ARES checker loses its is-a-Module check", "xbench/encoder/xares_checker.py",
          "if not isinstance(encoder, torch.nn.Module):", "if False:", CHECKER_TESTS),
    Fault("checker-no-tensor", "the X-ARES checker loses its output-is-tensor check",
          "xbench/encoder/xares_checker.py", "if not isinstance(encoded, torch.Tensor):", "if False:", CHECKER_TESTS),
    Fault("bootstrap-90", "bootstrap intervals shrink from 95 % to 90 % (default level)", "xbench/scoring/scores.py",
          "alpha: float = 0.05,", "alpha: float = 0.10,", SCORE_TESTS),
    Fault("bootstrap-quantiles", "bootstrap intervals shrink from 95 % to 90 % (quantiles)", "xbench/scoring/scores.py",
          "np.quantile(values, [alpha / 2, 1 - alpha / 2])", "np.quantile(values, [alpha, 1 - alpha])", SCORE_TESTS),
    Fault("map-micro", "mAP switches from macro to micro", "xbench/scoring/metrics.py",
          'average_precision_score(np.asarray(targets), np.asarray(scores), average="macro")',
          'average_precision_score(np.asarray(targets), np.asarray(scores), average="micro")', SCORE_TESTS),
    Fault("knn-raw-train", "the default protocol's kNN stops normalising train rows", "xbench/probes/knn.py",
          'base = _unit_rows(train) if protocol == "xbench" else _unit_columns(train)',
          'base = train if protocol == "xbench" else _unit_columns(train)', KNN_TESTS),
    Fault("knn-xares-rows", "the xares protocol's kNN normalises train rows, not columns", "xbench/probes/knn.py",
          'base = _unit_rows(train) if protocol == "xbench" else _unit_columns(train)',
          "base = _unit_rows(train)", ("tests/probes/test_knn_recipe.py",)),
    Fault("knn-temperature", "the kNN temperature is 0.1 instead of 0.07", "xbench/probes/knn.py",
          "temperature: float = 0.07,", "temperature: float = 0.1,", ("tests/probes/test_knn_recipe.py",)),
    Fault("knn-k20", "the kNN votes with 20 neighbours instead of 10", "xbench/probes/knn.py",
          "k: int = 10,", "k: int = 20,", ("tests/probes/test_knn_recipe.py",)),
    Fault("knn-train-plus-valid", "the run's kNN also searches the validation split", "xbench/pipeline/scorers.py",
          "x_train, y_train = train.inputs.numpy(), train.targets.numpy()",
          "x_train, y_train = (np.concatenate([d.inputs.numpy() for d in (train, valid)]),"
          " np.concatenate([d.targets.numpy() for d in (train, valid)]))", ("tests/probes/test_knn_recipe.py",)),
    Fault("cli-unwired", "ls/describe are unwired from the command line", "xbench/cli/__init__.py",
          '    "tasks",  # ls, describe\n', "", ("tests/taskspec/test_tasks.py",)),
    Fault("oracle-never-required", "a missing test oracle skips under CI=true", "tests/conftest.py",
          "        if oracles_required():\n            pytest.fail(", "        if False:\n            pytest.fail(",
          ("tests/test_oracles.py",)),
)  # fmt: skip


def copy_repository(dest: Path, source: str) -> None:
    """The checkout's files (worktree: tracked + untracked, not ignored; head: HEAD's tree) into ``dest``."""
    if source == "head":
        tar = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            archive.extractall(dest, filter="data")
    else:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.decode()  # fmt: skip
        for rel in filter(None, listed.split("\0")):
            src = ROOT / rel
            if src.is_file():
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(src.read_bytes())
    for name in ("encoders", "tasks"):  # installed as xbench.encoders / xbench.tasks
        (dest / "xbench" / name).symlink_to(dest / name, target_is_directory=True)


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(copy), OMP_NUM_THREADS="1", XBENCH_NUM_THREADS="1")
    env.pop("CI", None)
    return env


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[list[str], list[str], float]:
    """Run ``tests`` in the copy: (failed or errored test ids, skipped test ids, seconds)."""
    report = copy / "report.xml"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *tests],
        cwd=copy, env=_env(copy), capture_output=True, text=True,
    )  # fmt: skip
    failed, skipped = [], []
    for case in ET.parse(report).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failed.append(name)
        elif "skipped" in tags:
            skipped.append(name)
    return failed, skipped, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = ", ".join(f.name for f in FAULTS)
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"faults to try (of {names})")
    parser.add_argument("--source", choices=("worktree", "head"), default="worktree", help="what to copy")
    args = parser.parse_args(argv)
    faults = [f for f in FAULTS if not args.only or f.name in args.only]
    if not faults:
        parser.error("no fault of that name")
    with tempfile.TemporaryDirectory(prefix="xbench-mutants-") as tmp:
        copy = Path(tmp)
        copy_repository(copy, args.source)
        where = subprocess.run(
            [sys.executable, "-c", "import xbench, xbench.encoders as e; print(xbench.__file__, e.__file__)"],
            cwd=copy, env=_env(copy), capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        if not all(Path(p).resolve().is_relative_to(copy.resolve()) for p in where):
            print(f"error: the copy imports xbench from {where}, not from {copy}", file=sys.stderr)
            return 1
        all_tests = tuple(dict.fromkeys(t for f in faults for t in f.tests))
        broken, skipped, seconds = run_tests(copy, all_tests)
        print(f"unmutated copy: {len(broken)} failing, {len(skipped)} skipped ({seconds:.0f} s)")
        for name in broken:
            print(f"    already fails (not counted): {name}")
        missed = 0
        for fault in faults:
            target = copy / fault.path
            original = target.read_text()
            mutated = fault.apply(original)
            if mutated is None:
                print(f"{fault.name:<22} STALE   {fault.path} no longer holds the text this fault replaces")
                missed += 1
                continue
            target.write_text(mutated)
            try:
                failed, _, seconds = run_tests(copy, fault.tests)
                failed = [name for name in failed if name not in broken]
            finally:
                target.write_text(original)
            verdict = "caught" if failed else "MISSED"
            missed += not failed
            print(f"{fault.name:<22} {verdict:<7} {fault.what} ({seconds:.0f} s)")
            for name in failed:
                print(f"    fails: {name}")
    print(f"{len(faults) - missed}/{len(faults)} faults caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
