"""xbench: an X-ARES-compatible benchmark harness and encoder zoo for audio encoders.

The pipeline, stage by stage (one subpackage each): ``taskspec`` (declarations and registry) →
``data`` (download, shards, decode, resample) → ``encoder`` (loading, harness, checkers) →
``embed`` (work units, cache) → ``probes`` → ``scoring`` → ``pipeline`` (the run) → ``report`` →
``submission``; plus ``suites`` and ``cli``. ``xbench.evaluate`` is imported lazily, so
``import xbench`` does not import torch.
"""

from __future__ import annotations

from typing import Any

from xbench._version import __version__

__all__ = ["__version__", "evaluate"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from xbench.pipeline.run import evaluate

        return evaluate
    raise AttributeError(f"module 'xbench' has no attribute {name!r}")
