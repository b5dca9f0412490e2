#!/usr/bin/env bash
# The project's test command (README "Quick start", and .ci/run). On a fresh Debian 12 machine it installs its own
# packages, builds everything (the CUDA backend too when nvcc is present; its tests skip without a GPU), runs every
# test, then builds the tests labelled "sanitize" with AddressSanitizer + UBSan and runs them, then runs each fuzz
# target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
jobs=$(nproc)

echo "== build (Release) =="
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"

echo "== tests =="
mkdir -p build/logs
ctest --test-dir build -j"$jobs" --output-on-failure --no-tests=error --timeout 900 2>&1 | tee build/logs/ctest.log

echo "== sanitizer tests (ASan + UBSan) =="
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMMFP4_SANITIZE=ON -DMMFP4_CUDA=OFF \
      -DMMFP4_PYTHON=OFF -DMMFP4_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs" --target sanitize_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -L sanitize -j"$jobs" --output-on-failure --no-tests=error --timeout 900 2>&1 \
  | tee build/logs/ctest-sanitize.log

if [ -x scripts/fuzz.sh ]; then
  echo "== fuzzing (bounded) =="
  ./scripts/fuzz.sh 30
fi
# The summaries again, last, so whoever reads only the end of the output sees what ran.
echo "== summary =="
echo "Release build:  $(grep -E 'tests passed|tests failed' build/logs/ctest.log | tail -n 1)"
echo "ASan + UBSan:   $(grep -E 'tests passed|tests failed' build/logs/ctest-sanitize.log | tail -n 1)"
echo "== all tests passed =="
