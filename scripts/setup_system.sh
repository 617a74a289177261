#!/usr/bin/env bash
# System packages: bubblewrap, the sandbox `xbench package` and `xbench verify-submission` run an
# entry's code in (without it they refuse unless given --no-sandbox); and for the offline suite
# (`xbench suite build offline`) the flite and festival TTS engines with their voices and two General
# MIDI SoundFonts. espeak-ng, TimGM6mb and the SoundFont renderer come from PyPI (scripts/setup.sh),
# so they need no root.
# Idempotent: installs only what is missing. Without root (or sudo) or without apt-get it installs
# nothing, says so, and exits 0: `xbench suite build offline --partial` then builds what it can.
set -euo pipefail
PKGS=(
  bubblewrap
  flite
  festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k festvox-itapc16k
  festvox-suopuhe-lj festvox-suopuhe-mv festvox-czech-dita festvox-czech-machac festvox-czech-ph festvox-ru
  fluid-soundfont-gm musescore-general-soundfont-small
)
missing=()
for pkg in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "[setup_system] system packages present" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[setup_system] skipped: no apt-get here; missing: ${missing[*]}" >&2
  exit 0
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "[setup_system] skipped: not root (and no passwordless sudo); missing: ${missing[*]}" >&2
    exit 0
  fi
fi
echo "[setup_system] installing ${missing[*]} ..." >&2
if ! { "${SUDO[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q \
  "${missing[@]}" >/dev/null; }; then
  echo "[setup_system] apt-get failed; missing: ${missing[*]}" >&2
fi
exit 0
