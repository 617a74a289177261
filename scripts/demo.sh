#!/usr/bin/env bash
# README quick start, command 1: set up (system packages + .venv), build the offline suite (TTS speech
# and SoundFont music, generated locally), score a baseline and two pretrained encoders on both
# tracks, print the table and write results/runs/offline/leaderboard.{csv,png}.
# Extra arguments go to `python -m xbench.demo` (e.g. --small, --encoders logmel,crepe-tiny).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_system.sh
VENV="$(bash scripts/setup.sh)"
PARTIAL=()
if [ "$(id -u)" != 0 ] && ! command -v flite >/dev/null 2>&1; then
  PARTIAL=(--partial)  # no root: build the pools whose sources came from PyPI
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
"$VENV/bin/python" -m xbench.demo "${PARTIAL[@]}" "$@"
