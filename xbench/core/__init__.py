"""Shared plumbing: atomic writes and the data/cache folder conventions."""
