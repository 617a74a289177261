"""Stage 5 — probes trained from the cache: the linear (MLP) probe, kNN, retrieval and ASR heads."""
