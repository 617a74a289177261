"""Stage 1 — task declarations: the validated `TaskConfig` schema, the registry and task listing."""
