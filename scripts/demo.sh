#!/usr/bin/env bash
# README quick start, command 1: set up the venv and check the built-in baseline encoders.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$(bash scripts/setup.sh)"
for enc in logmel random-projection; do
  "$VENV/bin/xbench" check --encoder "$enc"
done
