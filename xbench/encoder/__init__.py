"""Stage 3 — the encoder: loading, the harness wrapper, identity, X-ARES's checker and the deep checker."""
