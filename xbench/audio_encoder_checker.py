"""Stable public path of X-ARES's checker (``xares.audio_encoder_checker``'s drop-in).

See :mod:`xbench.encoder.xares_checker`.
"""

from xbench.encoder.xares_checker import check_audio_encoder, main, xares_checks

__all__ = ["check_audio_encoder", "main", "xares_checks"]
