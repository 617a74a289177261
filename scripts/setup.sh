#!/usr/bin/env bash
# Create or refresh the project virtual environment (.venv, or $XBENCH_VENV) with pip.
# Keyed by the Python version and pyproject.toml: an unchanged key only re-points the editable
# install at this checkout (about 2 s); a changed key rebuilds the venv (about 70 s here).
# Uses pip on purpose: torch>=2.4,<2.14 then takes the local CPU wheel (uv/poetry would not).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${XBENCH_VENV:-.venv}"
PY="${PYTHON:-python3}"
KEY="$($PY --version 2>&1)-$(cat pyproject.toml setup.py scripts/setup.sh | sha256sum | cut -c1-16)"
quiet() { grep -v -E "is ignored: it is neither a file nor a directory" || true; }
if [ "$(cat "$VENV/.xbench-key" 2>/dev/null)" != "$KEY" ]; then
  echo "[setup] creating $VENV (pip install -e '.[dev]') ..." >&2
  rm -rf "$VENV"
  $PY -m venv "$VENV"
  "$VENV/bin/pip" install -q -e '.[dev]' 2>&1 | quiet
  # Test oracles, never imported by xbench itself: X-ARES 0.1.3 with what its modules import
  # (its checker, kNN and pipeline) and torchaudio 2.11's pure-Python functions (its CUDA .so
  # files cannot load beside CPU torch, so they are removed); dasheng 0.0.9 and openbeats 0.1.1
  # (with einops) are the reference models the Dasheng and BEATs equality tests compare with; submitit
  # (the slurm extra) runs the launcher test's local jobs.
  "$VENV/bin/pip" install -q --no-deps xares==0.1.3 loguru==0.7.3 pytorch-ignite==0.5.5 jiwer==4.0.0 \
    rapidfuzz==3.14.6 torchaudio==2.11.0 dasheng==0.0.9 einops==0.8.2 openbeats==0.1.1 submitit==1.5.4 2>&1 | quiet
  TA_DIR="$("$VENV/bin/python" -c 'import importlib.util,os;print(os.path.dirname(importlib.util.find_spec("torchaudio").origin))')"
  rm -f "$TA_DIR"/lib/*.so
  # --- offline suite and offline zoo (xbench suite build offline; resemblyzer, openwakeword, crepe-tiny) ---
  # The --no-deps packages declare torchaudio (another torch), tflite-runtime, webrtcvad (a C build) or
  # pyaudio (PortAudio headers); what they really import is in the first line or already installed.
  "$VENV/bin/pip" install -q onnxruntime==1.31.1 librosa==0.11.0 resampy==0.4.3 webrtcvad-wheels==2.0.14.post1 \
    espeakng-loader==0.2.4 2>&1 | quiet
  "$VENV/bin/pip" install -q --no-deps resemblyzer==0.1.4 openwakeword==0.5.1 torchcrepe==0.0.24 \
    tinysoundfont==0.3.7 pretty-midi==0.2.11.post0 2>&1 | quiet
  # --- end offline block ---
  echo "$KEY" > "$VENV/.xbench-key"
else
  "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e . 2>&1 | quiet
fi
"$VENV/bin/python" -c 'import torch, xbench; assert torch.__version__ < "2.14", torch.__version__' >&2
echo "$VENV"
