"""Stage 2 — data: Zenodo fetch, download, safe extraction, shard resolution and reading, decode, resample, writer."""
