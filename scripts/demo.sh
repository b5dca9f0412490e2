#!/usr/bin/env bash
# The README's run command: on a fresh Debian 12 machine, installs what it needs, builds the mmfp4 tool and
# generates text with the small MMFP4 model bundled in models/ (a GLM-4.7-Flash-architecture model: MLA attention +
# sigmoid-routed mixture of experts, quantized by `mmfp4 quantize --hadamard 64`). Extra arguments go to
# `mmfp4 generate` (e.g. --device cpu, -n 100, --temp 0.8 --seed 1).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target mmfp4
model=models/tiny-glm4-moe-lite-mmfp4
echo
echo "== $(build/bin/mmfp4 inspect "$model" | head -n 1)"
echo "== mmfp4 generate -m $model -p 'The Debian package manager' $*"
echo
build/bin/mmfp4 generate -m "$model" -p "The Debian package manager" -n 80 "$@"
