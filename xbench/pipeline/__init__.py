"""Stage 7 — the run: ``evaluate``, ``RunOptions``, resume."""

from xbench.pipeline.run import RunOptions, averages, evaluate, summary_table

__all__ = ["RunOptions", "averages", "evaluate", "summary_table"]
