#!/usr/bin/env bash
# Installs the Debian 12 packages hearth needs to build, test and run its demo. Idempotent:
# packages already present are skipped, and apt-get runs only when something is missing.
set -euo pipefail
pkgs=(
  build-essential          # gcc 12, make
  libopenblas-openmp-dev   # sgemm, the OpenMP build (shares threads with our OpenMP loops)
  libcmocka-dev            # the C test framework
  zlib1g-dev               # reads the gzip'd digits set
  python3-sklearn          # ships the 8x8 handwritten digits (hearth digits)
  fortunes                 # a real English text corpus for the demo
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
