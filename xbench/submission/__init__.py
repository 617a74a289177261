"""Stage 9 — challenge submissions: package and verify."""
