"""Stage 4 — embedding: work units, encoding a unit, and the embedding cache."""
