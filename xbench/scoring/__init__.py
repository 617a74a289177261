"""Stage 6 — scoring: metrics, normalisation to 0–1, bootstrap intervals and weighted averages."""
