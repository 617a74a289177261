"""xbench: an X-ARES-compatible benchmark harness and encoder zoo for audio encoders."""

from xbench._version import __version__

__all__ = ["__version__", "evaluate"]


def __getattr__(name: str) -> object:
    # `xbench.evaluate(encoder, tasks, options)` without importing torch at `import xbench`
    if name == "evaluate":
        import importlib

        return importlib.import_module("xbench.evaluate")
    raise AttributeError(f"module 'xbench' has no attribute {name!r}")
