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
  log="build-fuzz/$t.log"
  echo "== $t: ${secs}s (log: $log) =="
  # libFuzzer's progress lines go to the log, so the test command's output ends with the test summaries; on a
  # failure the log's tail (the sanitizer report and the reproducer's name) is printed.
  if ! (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "./fuzz/$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1 \
        "corpus/$t") >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "fuzz.sh: $t FAILED (full log: $log)"
    exit 1
  fi
  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units)' "$log" | sed "s/^/  $t: /" || true
done
echo "== fuzzing passed (${#targets[@]} targets, ${secs}s each) =="
