"""Stable public path for encoder loading (user code imports it): see :mod:`xbench.encoder.contract`."""

from xbench.encoder.contract import (
    ENTRY_POINT_GROUP,
    REQUIRED_ATTRIBUTES,
    EncoderAttributeError,
    EncoderError,
    EncoderLoadError,
    EncoderOutputError,
    HarnessedEncoder,
    HarnessOptions,
    attribute_problems,
    load_encoder,
    load_encoder_class,
    validate_attributes,
    zoo_entry_points,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "REQUIRED_ATTRIBUTES",
    "EncoderAttributeError",
    "EncoderError",
    "EncoderLoadError",
    "EncoderOutputError",
    "HarnessOptions",
    "HarnessedEncoder",
    "attribute_problems",
    "load_encoder",
    "load_encoder_class",
    "validate_attributes",
    "zoo_entry_points",
]
