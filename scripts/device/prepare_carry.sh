#!/usr/bin/env bash
# Prepares .carry/ (git-ignored) for a run of scripts/device/check_all.sh on the GPU machine: the CUDA test and bench
# binaries of BUILD (built here with nvcc; the CUDA runtime and gtest are linked statically) and the shared fixture
# folders named in MODELS, xz-compressed. The whole working tree plus .carry must stay under 64 MiB per call, so the
# 12 models of the model tests need three calls (sizes compressed: fixtures ~27 MB, each trained model 10-24 MB):
#   MODELS=set1: fixtures/parity fixtures/parity-mmfp4 models/tiny-glm4-moe-lite-mmfp4-h64   (the default)
#   MODELS=set2: models/tiny-qwen3 models/tiny-qwen3-mmfp4
#   MODELS=set3: models/tiny-glm4-moe-lite
#   MODELS=none: no fixtures (benchmarks only)
#   BUILD=build-cuda MODELS=set1 [CLI=1] scripts/device/prepare_carry.sh
set -euo pipefail
BUILD=${BUILD:-build-cuda}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}
MODELS=${MODELS:-set1}
case "$MODELS" in
  set1) MODELS="fixtures/parity fixtures/parity-mmfp4 models/tiny-glm4-moe-lite-mmfp4-h64";;
  set2) MODELS="models/tiny-qwen3 models/tiny-qwen3-mmfp4";;
  set3) MODELS="models/tiny-glm4-moe-lite";;
  none) MODELS="";;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=$root/.carry
rm -rf "$carry" && mkdir -p "$carry/stage/bin"
for b in tests/cuda/test_cuda_repack tests/cuda/test_cuda_ops tests/cuda/test_cuda_models bench/cuda/bench_cuda_linear \
         bench/cuda/bench_cuda_decode; do
  if [ -x "$BUILD/$b" ]; then cp "$BUILD/$b" "$carry/stage/bin/"; strip "$carry/stage/bin/$(basename "$b")";
  else echo "warning: $BUILD/$b is not built" >&2; fi
done
# CLI=1: the mmfp4 command too (for `mmfp4 bench --device cuda`), with the ICU libraries it links (Debian 12's
# libicu72; the GPU machine's distribution has another version), found through LD_LIBRARY_PATH by check_all.sh.
if [ "${CLI:-0}" = 1 ]; then
  cp "$BUILD/bin/mmfp4" "$carry/stage/bin/" && strip "$carry/stage/bin/mmfp4"
  mkdir -p "$carry/stage/lib"
  for lib in $(ldd "$BUILD/bin/mmfp4" | awk '/libicu/{print $3}'); do cp -L "$lib" "$carry/stage/lib/"; done
fi
tar -C "$carry/stage" -cf - $(cd "$carry/stage" && ls) | xz -9 -T2 > "$carry/bin.tar.xz"
if [ -n "$MODELS" ]; then
  # Model folders without their tokenizers and reports (the tests read configs, weights and references).
  # With CLI=1 the trained models keep their tokenizers (the CLI stages tokenize text).
  keep_tok=()
  [ "${CLI:-0}" = 1 ] || keep_tok=(--exclude=tokenizer.json)
  (cd "$SHARED" && tar -cf - "${keep_tok[@]}" --exclude=quantization_report.json --exclude=training.json \
      $MODELS) | xz -9 -T2 > "$carry/shared.tar.xz"
fi
rm -rf "$carry/stage"
du -sh "$carry"/*
tree=$( (cd "$root" && (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) )
total=$(( tree + $(du -cb "$carry"/* | tail -1 | cut -f1) ))
echo "working tree + carry: $(( total >> 20 )) MiB of 64"
[ "$total" -lt $(( 64 << 20 )) ] || echo "warning: over the 64 MiB a device call carries: carry fewer MODELS" >&2
