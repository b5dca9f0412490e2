#!/usr/bin/env bash
# Installs the Debian 12 packages mmfp4 needs to build, test and run. Idempotent; a no-op when all are present.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config ccache git
      libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev libopenblas-dev
      python3 python3-dev python3-numpy pybind11-dev libicu-dev
      clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "mmfp4: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
