#!/bin/bash
# Regenerates bench/results/cpu-*: the CPU kernel microbenchmarks and `mmfp4 bench` on the shared tiny models and
# on a 4-layer synthetic GLM-4.7-Flash. Usage: bench/cpu/run_results.sh [BUILD_DIR [benchmark args...]]
# (default build-cpu; e.g. --benchmark_filter=pair/ for the paired ratios only).
# Numbers are only comparable within one file: each records the machine, its load and the same-run bandwidth.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build-cpu}
shift || true
OUT=bench/results
mkdir -p "$OUT"
SYNTH=${MMFP4_SYNTH_DIR:-/tmp/glm47-flash-4l}
[ -d "$SYNTH" ] || "$B/bin/mmfp4" synth --like glm-4.7-flash --layers 4 "$SYNTH"
note() { echo "# $(date -u +%FT%TZ) $(uname -n) load: $(cut -d' ' -f1-3 /proc/loadavg) commit $(git rev-parse --short HEAD)"; }

{ note; "$B/bin/bench_cpu_kernels" --benchmark_out="$OUT/cpu-kernels.json" --benchmark_out_format=json "$@"; } \
  2>&1 | tee "$OUT/cpu-kernels.txt"

for m in ../shared/models/tiny-qwen3-mmfp4 ../shared/models/tiny-glm4-moe-lite-mmfp4-h64 "$SYNTH"; do
  name=$(basename "$m")
  { note; "$B/bin/mmfp4" bench -m "$m" -p 512 -n 128 -b 1,4,16 -r 5 --json-out "$OUT/cpu-bench-$name.json"; } 2>&1 \
    | tee "$OUT/cpu-bench-$name.txt"
done
