#!/bin/bash
# Regenerates bench/results/cpu-*: the CPU kernel microbenchmarks and `mmfp4 bench` on the shared tiny models and
# on a 4-layer synthetic GLM-4.7-Flash. Usage: bench/cpu/run_results.sh [BUILD_DIR] (default build-cpu).
#
# On a machine shared with other work, set MMFP4_BENCH_WAIT_QUIET=1: each stage then waits (up to 30 min) until the
# CPUs have been >= 85% idle for 4 s before it starts. Each file records the time, the load and the commit; ratios
# (bw_frac, speedup, the paired decode fraction) are measured within one run and are what to compare.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build-cpu}
OUT=bench/results
mkdir -p "$OUT"
SYNTH=${MMFP4_SYNTH_DIR:-/tmp/glm47-flash-4l}
[ -d "$SYNTH" ] || "$B/bin/mmfp4" synth --like glm-4.7-flash --layers 4 "$SYNTH"

note() { echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg) commit $(git rev-parse --short HEAD)"; }
idle_pct() {
  local a b
  read -r _ u n s i w q sq st _ < /proc/stat; a="$((i + w)) $((u + n + s + i + w + q + sq + st))"
  sleep 4
  read -r _ u n s i w q sq st _ < /proc/stat; b="$((i + w)) $((u + n + s + i + w + q + sq + st))"
  set -- $a $b
  echo $(( 100 * ($3 - $1) / ($4 - $2 + 1) ))
}
wait_quiet() {
  [ "${MMFP4_BENCH_WAIT_QUIET:-0}" = 1 ] || return 0
  for _ in $(seq 1 450); do
    if [ "$(idle_pct)" -ge 85 ]; then return 0; fi
  done
  echo "# never idle for 30 min: running anyway" >&2
  return 0
}

# 1. Same-run ratios: GEMV vs read bandwidth, GEMM vs OpenBLAS (the gates of issue #6).
wait_quiet
{ note; "$B/bin/bench_cpu_kernels" --benchmark_filter='membw|pair/' \
    --benchmark_out="$OUT/cpu-kernels-pairs.json" --benchmark_out_format=json; note; } 2>&1 \
  | tee "$OUT/cpu-kernels-pairs.txt"

# 2. Decode and prefill of the 4-layer GLM-4.7-Flash.
wait_quiet
name=$(basename "$SYNTH")
{ note; "$B/bin/mmfp4" bench -m "$SYNTH" -p 512 -n 32 -b 1,4,16 -r 5 --json-out "$OUT/cpu-bench-$name.json"; note; } 2>&1 \
  | tee "$OUT/cpu-bench-$name.txt"

# 3. Every kernel and op benchmark.
wait_quiet
{ note; "$B/bin/bench_cpu_kernels" --benchmark_filter='-pair/' \
    --benchmark_out="$OUT/cpu-kernels.json" --benchmark_out_format=json; note; } 2>&1 | tee "$OUT/cpu-kernels.txt"

# 4. The shared tiny models (they fit in the L3: their "bandwidth" is the cache's).
for m in ../shared/models/tiny-qwen3-mmfp4 ../shared/models/tiny-glm4-moe-lite-mmfp4-h64; do
  wait_quiet
  name=$(basename "$m")
  { note; "$B/bin/mmfp4" bench -m "$m" -p 512 -n 128 -b 1,4,16 -r 5 --json-out "$OUT/cpu-bench-$name.json"; note; } \
    2>&1 | tee "$OUT/cpu-bench-$name.txt"
done
