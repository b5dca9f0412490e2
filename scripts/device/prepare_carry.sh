#!/usr/bin/env bash
# Prepares .carry/ (git-ignored) for a run of scripts/device/check_all.sh on the GPU machine: the CUDA test and bench
# binaries of BUILD (built here with nvcc; the CUDA runtime and gtest are linked statically) and the shared fixture
# folders named in MODELS, xz-compressed. The whole working tree plus .carry must stay under 64 MiB per call.
#
#   BUILD=build-cuda MODELS="fixtures/parity fixtures/parity-mmfp4" scripts/device/prepare_carry.sh
set -euo pipefail
BUILD=${BUILD:-build-cuda}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}
MODELS=${MODELS:-"fixtures/parity fixtures/parity-mmfp4"}
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=$root/.carry
rm -rf "$carry" && mkdir -p "$carry/stage/bin"
for b in tests/cuda/test_cuda_repack tests/cuda/test_cuda_ops tests/cuda/test_cuda_models bench/cuda/bench_cuda_linear \
         bench/cuda/bench_cuda_decode; do
  if [ -x "$BUILD/$b" ]; then cp "$BUILD/$b" "$carry/stage/bin/"; strip "$carry/stage/bin/$(basename "$b")"; fi
done
tar -C "$carry/stage" -cf - bin | xz -9 -T2 > "$carry/bin.tar.xz"
if [ -n "$MODELS" ]; then
  # Model folders without their tokenizers and reports (the tests read configs, weights and references).
  (cd "$SHARED" && tar -cf - --exclude=tokenizer.json --exclude=quantization_report.json --exclude=training.json \
      $MODELS) | xz -9 -T2 > "$carry/shared.tar.xz"
fi
rm -rf "$carry/stage"
du -sh "$carry"/*
