#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/fuzz_*.cpp) for a bounded time: ./scripts/fuzz.sh [SECONDS per target, 30].
# Builds them with clang, ASan and UBSan in build-fuzz/, seeds each corpus, and fails on the first crash, leak,
# timeout or sanitizer report (the reproducer is left in build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
root=$(pwd)
shared=${MMFP4_SHARED_DIR:-$root/../shared}

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DMMFP4_FUZZ=ON \
      -DMMFP4_CUDA=OFF -DMMFP4_PYTHON=OFF -DMMFP4_BENCH=OFF -DMMFP4_TESTS=OFF >/dev/null
targets=()
for src in fuzz/fuzz_*.cpp; do
  [ -e "$src" ] || continue
  targets+=("$(basename "$src" .cpp)")
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets"
  exit 0
fi
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"

# Seeds: the strings of the tokenizer reference fixtures (one file each) for tokenizer-like targets, plus any
# checked-in fuzz/seeds/<target>/ folder.
seed() {
  local target=$1 dir=$2
  if [ -d "fuzz/seeds/$target" ]; then cp -r "fuzz/seeds/$target/." "$dir/"; fi
  local refs="$shared/fixtures/tokenizers/token_refs_public.json"
  if [[ $target == fuzz_tokenizer* ]] && [ -f "$refs" ] && command -v python3 >/dev/null; then
    python3 - "$refs" "$dir" <<'PY'
import json, sys, os
refs = json.load(open(sys.argv[1]))
for i, e in enumerate(refs["qwen3"]):
    with open(os.path.join(sys.argv[2], "ref%03d" % i), "w", encoding="utf-8") as f:
        f.write(e["text"])
PY
  fi
}

for t in "${targets[@]}"; do
  corpus="build-fuzz/corpus/$t"
  mkdir -p "$corpus"
  seed "$t" "$corpus"
  echo "== $t: ${secs}s =="
  (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "./fuzz/$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1 \
     "corpus/$t")
done
echo "== fuzzing passed (${#targets[@]} targets, ${secs}s each) =="
