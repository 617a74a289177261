"""The small task ``xbench verify-submission`` runs can fail: a working encoder passes it clearly, one that
cannot hear pitch is rejected.

What these guard: the log-mel baseline reaching 0.9 on both tracks fails if the probe trains too little
(at 2 steps, 1 epoch of batches of 32, its MLP scores 0.52); the pitch-blind encoder being rejected
fails if the floor is removed or lowered to chance, or if either track's score is left out of the verdict.
"""

import json

import pytest
from sandbox_helpers import entry_zip, require_bwrap

from xbench.cli import main
from xbench.submission.small_task import SCORE_FLOOR, TONES, build_small_task, score_verdict, small_task_scores

PITCH_BLIND = """\
import torch


class EnergyEncoder(torch.nn.Module):
    \"\"\"Each 20 ms frame's RMS energy, broadcast to 8 dims: it follows the audio but not its pitch.\"\"\"

    sampling_rate = 16000
    hop_size_in_ms = 20
    output_dim = 8

    def forward(self, audio):
        frames = audio[:, : audio.shape[1] // 320 * 320].reshape(audio.shape[0], -1, 320)
        return frames.pow(2).mean(-1, keepdim=True).sqrt().expand(-1, -1, self.output_dim)
"""


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory):
    return build_small_task(tmp_path_factory.mktemp("small-task"))


def test_the_log_mel_baseline_passes_clearly_on_both_tracks(tasks_dir, tmp_path):
    scores = small_task_scores("logmel", tasks_dir, tmp_path)
    assert set(scores) == {"knn", "mlp"}
    assert min(scores.values()) >= 0.9, scores  # measured 1.000 / 1.000
    assert score_verdict(scores) == (True, f"knn {scores['knn']:.3f}, mlp {scores['mlp']:.3f} (floor 0.6, chance 0.25)")


def test_a_pitch_blind_encoder_scores_below_the_floor_and_fails(tasks_dir, tmp_path):
    (tmp_path / "enc.py").write_text(PITCH_BLIND)
    scores = small_task_scores(str(tmp_path / "enc.py"), tasks_dir, tmp_path / "run")
    assert set(scores) == {"knn", "mlp"}
    assert max(scores.values()) < SCORE_FLOOR, scores  # measured 0.250 / 0.250: chance
    assert max(scores.values()) < 1 / len(TONES) + 0.15
    ok, line = score_verdict(scores)
    assert not ok and line == f"knn {scores['knn']:.3f}, mlp {scores['mlp']:.3f} (floor 0.6, chance 0.25)"
    # one track under the floor is enough
    assert score_verdict({"knn": 1.0, "mlp": SCORE_FLOOR - 0.01})[0] is False
    assert score_verdict({"knn": SCORE_FLOOR, "mlp": SCORE_FLOOR})[0] is True
    assert score_verdict({})[0] is False


@pytest.mark.slow  # 22-31 s here (the small task alone 15 s in the sandbox: a fresh interpreter, 2 shared cores)
def test_verify_submission_rejects_a_pitch_blind_entry_naming_both_scores(tmp_path, capsys):
    require_bwrap()
    entry = entry_zip(tmp_path, PITCH_BLIND, "EnergyEncoder")
    code = main(["verify-submission", str(entry), "--long-seconds", "2", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["status"] == "rejected", report
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["checker"]["verdict"] == "pass"  # a valid encoder: only the small task can catch it
    assert steps["small task"]["verdict"] == "fail"
    scores = report["small_task"]["scores"]
    assert set(scores) == {"knn", "mlp"} and max(scores.values()) < SCORE_FLOOR
    reason = f"small task: knn {scores['knn']:.3f}, mlp {scores['mlp']:.3f} (floor 0.6, chance 0.25)"
    assert report["reason"] == reason
