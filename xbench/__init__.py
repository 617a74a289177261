"""xbench: an X-ARES-compatible benchmark harness and encoder zoo for audio encoders."""

from xbench._version import __version__

__all__ = ["__version__"]
