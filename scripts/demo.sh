#!/usr/bin/env bash
# README quick start, command 1: set up (system packages + .venv), build the offline suite (TTS speech
# and SoundFont music, generated locally), score a baseline and two pretrained encoders on both
# tracks, print the table and write results/runs/offline/leaderboard.{csv,png}.
# Extra arguments go to `python -m xbench.suites.demo` (e.g. --small, --encoders logmel,crepe-tiny).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_system.sh
VENV="$(bash scripts/setup.sh)"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# --partial: where setup_system.sh could not install a source (no root), build that pool's PyPI-only variant
"$VENV/bin/python" -m xbench.suites.demo --partial "$@"
