"""Outcome records shared by the X-ARES checker and the deep checker."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, pass / warn / fail / skip, a one-line reason and the measured value."""

    name: str
    status: Status
    reason: str
    value: Any = None

    def line(self) -> str:
        """One human-readable line."""
        shown = "" if self.value is None else f" [{_fmt(self.value)}]"
        return f"{self.status.upper():4s}  {self.name}: {self.reason}{shown}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


@dataclass
class CheckReport:
    """All checks run on one encoder."""

    encoder: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def warned(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "warn"]

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "ok": self.ok,
            "counts": {s: sum(r.status == s for r in self.results) for s in ("pass", "warn", "fail", "skip")},
            "results": [asdict(r) for r in self.results],
        }

    def text(self) -> str:
        counts = self.to_dict()["counts"]
        lines = [f"xbench check: {self.encoder}"]
        lines += ["  " + r.line() for r in self.results]
        verdict = "OK" if self.ok else "FAILED"
        lines.append(
            f"{verdict}: {counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failed, "
            f"{counts['skip']} skipped"
        )
        return "\n".join(lines)
