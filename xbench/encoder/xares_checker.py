"""X-ARES 0.1.3's encoder checker: the same ten checks, in the same order, with the same verdicts.

``check_audio_encoder(encoder) -> bool`` is a drop-in for ``xares.audio_encoder_checker`` and the
ICME 2025 challenge template. It logs the first failing check and returns False; it never raises.
Like X-ARES it calls the encoder as given: no ``.eval()``, gradients on, on the CPU.

Command line: ``audio_encoder_checker path/to/encoder.py[:ClassName]``. For the deeper checks
(frame rate, batch invariance, determinism, long inputs, ...) use ``xbench check``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import torch

from xbench.encoder.check_result import CheckResult

logger = logging.getLogger("xbench.encoder.xares_checker")

HOP_HELP = """
hop_size_in_ms determines the time shift (in milliseconds) between consecutive frames in the encoded output.

For example:
- If input size is (B=1, T=50000) and output size is (B=1, T'=78, D), with a sampling rate of 16000 Hz:
- Input duration = 50000 / 16000 = 3125 ms.
- hop_size_in_ms ~ 3125 / 78 ~ 40 ms.
- This means the encoder shifts 40 ms forward for each frame.

It directly impacts the relationship between input length and output frames.
"""

XARES_CHECK_NAMES = (
    "xares.class_name",
    "xares.is_module",
    "xares.has_output_dim",
    "xares.has_sampling_rate",
    "xares.has_hop_size_in_ms",
    "xares.forward_runs",
    "xares.output_is_tensor",
    "xares.output_is_3d",
    "xares.batch_preserved",
    "xares.output_dim_matches",
)


def xares_checks(encoder: Any) -> list[CheckResult]:
    """Run X-ARES's ten checks in order; stop at the first failure; later checks are 'skip'."""
    results: list[CheckResult] = []
    names = iter(XARES_CHECK_NAMES)

    def ok(reason: str, value: Any = None) -> None:
        results.append(CheckResult(next(names), "pass", reason, value))

    def fail(reason: str, value: Any = None) -> list[CheckResult]:
        results.append(CheckResult(next(names), "fail", reason, value))
        results.extend(CheckResult(n, "skip", "not run: an earlier X-ARES check failed") for n in names)
        return results

    cls_name = type(encoder).__name__
    if not cls_name.endswith("Encoder"):
        return fail("Class name must end with 'Encoder'", cls_name)
    ok("class name ends with 'Encoder'", cls_name)
    if not isinstance(encoder, torch.nn.Module):
        return fail(f"Expected torch.nn.Module for encoder, got {type(encoder)}")
    ok("is a torch.nn.Module")
    for attr in ("output_dim", "sampling_rate", "hop_size_in_ms"):
        if not hasattr(encoder, attr):
            return fail(f"Encoder must have a '{attr}' attribute")
        ok(f"has '{attr}'", getattr(encoder, attr))

    sample_audio = torch.randn(2, 50000, generator=torch.Generator().manual_seed(0))
    try:
        encoded = encoder(sample_audio)
    except Exception as exc:  # X-ARES catches everything here
        return fail(f"Failed to encode the sample audio: {type(exc).__name__}: {exc}")
    ok("encoder(torch.randn(2, 50000)) ran")
    if not isinstance(encoded, torch.Tensor):
        return fail(f"Expected tensor for encoded_audio, got {type(encoded)}")
    ok("returned a torch.Tensor")
    if encoded.ndim != 3:
        return fail(f"Expected 3D tensor [B, T, D] for encoded_audio, got {encoded.dim()}D tensor", list(encoded.shape))
    ok("output is 3-D [B, T, D]", list(encoded.shape))
    if encoded.size(0) != sample_audio.size(0):
        return fail(f"Expected batch size={sample_audio.size(0)} for encoded_audio, got {encoded.size(0)}")
    ok("batch size preserved", encoded.size(0))
    if encoded.size(2) != encoder.output_dim:
        return fail(f"Expected output_dim={encoder.output_dim} for encoded_audio, got {encoded.size(2)}")
    ok("last dimension equals output_dim", encoded.size(2))
    return results


def check_audio_encoder(encoder: torch.nn.Module) -> bool:
    """X-ARES 0.1.3 ``check_audio_encoder``: True if all ten checks pass; logs the failing one."""
    for result in xares_checks(encoder):
        if result.status == "fail":
            logger.error("%s", result.reason)
            if result.name == "xares.has_hop_size_in_ms":
                print(HOP_HELP)
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    """``audio_encoder_checker ENCODER``: exit 0 if X-ARES would accept the encoder, 1 if not."""
    from xbench.encoder.contract import EncoderError, load_encoder

    parser = argparse.ArgumentParser(
        prog="audio_encoder_checker",
        description="Run X-ARES 0.1.3's encoder checks (use `xbench check` for the deep checks).",
    )
    parser.add_argument("encoder", help="encoder file (path/to/encoder.py[:ClassName]) or zoo name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        encoder = load_encoder(args.encoder)
    except EncoderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    passed = check_audio_encoder(encoder)
    print(f"{args.encoder}: {'PASS' if passed else 'FAIL'} (X-ARES 0.1.3 encoder checks)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
