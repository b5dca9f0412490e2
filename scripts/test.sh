#!/usr/bin/env bash
# The project's test command (README "Quick start", and .ci/run). On a fresh Debian 12 machine it installs its own
# packages, builds everything (the CUDA backend too when nvcc is present; its tests skip without a GPU), runs every
# test, then builds the tests labelled "sanitize" with AddressSanitizer + UBSan and runs them, then (when nvcc is
# present) runs the CUDA op suite in the CPU simulator, then runs each fuzz target for a bounded time.
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

# The CUDA kernels without a GPU: the op suite in the CPU simulator (docs/cuda.md, "Testing without a GPU"), every
# kernel against the CPU backend; then the whole-K launch (mbarrier ring, warps taking turns) under a skewed schedule,
# where slot-order races show. Needs the CUDA toolkit's headers and nvcc, as the backend's build does.
sim_result="skipped (no nvcc)"
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "== CUDA kernels in the CPU simulator =="
  cmake -S . -B build-sim -G Ninja -DCMAKE_BUILD_TYPE=Release -DMMFP4_CUDA=ON -DMMFP4_CUDA_SIM=ON \
        -DMMFP4_PYTHON=OFF -DMMFP4_BENCH=OFF >/dev/null
  cmake --build build-sim -j"$jobs" --target test_cuda_ops
  ctest --test-dir build-sim -R '^CudaOps\.' -j"$jobs" --output-on-failure --no-tests=error --timeout 900 2>&1 \
    | tee build/logs/ctest-sim.log
  MMFP4_SIM_SKEW=1 build-sim/tests/cuda/test_cuda_ops \
    --gtest_filter=CudaOps.WholeKGemvMatchesTheCpu:CudaOps.MoeStreamMatchesTheCpu 2>&1 \
    | tee build/logs/sim-skew.log | tail -n 3
  sim_result="$(grep -E 'tests passed|tests failed' build/logs/ctest-sim.log | tail -n 1); skewed whole-K and MoE \
stream: $(grep -cE '^\[  PASSED  \] 2 tests' build/logs/sim-skew.log) of 1 passed"
fi

if [ -x scripts/fuzz.sh ]; then
  echo "== fuzzing (bounded) =="
  ./scripts/fuzz.sh 30
fi
# The summaries again, last, so whoever reads only the end of the output sees what ran.
echo "== summary =="
echo "Release build:  $(grep -E 'tests passed|tests failed' build/logs/ctest.log | tail -n 1)"
echo "ASan + UBSan:   $(grep -E 'tests passed|tests failed' build/logs/ctest-sanitize.log | tail -n 1)"
echo "CUDA simulator: $sim_result"
echo "== all tests passed =="
