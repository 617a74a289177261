#!/usr/bin/env bash
# README quick start, command 2: set up the venv, lint, and run the default test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$(bash scripts/setup.sh)"
"$VENV/bin/ruff" check xbench encoders tasks tests $(ls benchmarks/*.py 2>/dev/null)
# One thread by default: two OpenMP threads collapse when another process is busy.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" XBENCH_NUM_THREADS="${XBENCH_NUM_THREADS:-1}"
"$VENV/bin/python" -m pytest -q --durations=15 "$@"  # the slowest tests in every log
