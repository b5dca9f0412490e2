#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .carry/ made by scripts/device/prepare_carry.sh:
# the CUDA op tests, the whole-model tests on the carried fixtures, the linear-layer benchmark, the full-size
# GLM-4.7-Flash decode/prefill benchmark, and the same decode benchmark with every new fast path off (A/B in one
# run). Full logs go to $OUT (they come back), a short summary is printed last.
#   TESTS=ops,models,bench,decode,decode_old  BENCH_ARGS="--shapes big --m 1,16"  GTEST_FILTER=...  check_all.sh
# Optional extras in TESTS: ab (one switch off at a time; AB_CFGS, AB_DECODE_ARGS, AB_LINEAR_ARGS, AB_LINEAR=0 skips the linear bench), cli_bench (mmfp4 bench --device cuda; carry with CLI=1), ops_old (op tests with MMFP4_CUDA_FAST=0), models_old (model tests likewise),
# models_kvf32, sass, ncu (NCU_M, NCU_SHAPE, NCU_DECODE=0|1), probe. The fast paths and their switches: docs/cuda.md, "Switches".
set -u
OUT=${OUT:-/tmp/mmfp4-out}
TESTS=${TESTS:-ops,models,bench,decode,decode_old,prefill_bf16}
BENCH_ARGS=${BENCH_ARGS:---shapes all --m 1,16,4096}
DECODE_ARGS=${DECODE_ARGS:---synth glm-4.7-flash --dir /tmp/glm --profile}
DECODE_OLD_ARGS=${DECODE_OLD_ARGS:---model /tmp/glm --batches 1,16,64}
mkdir -p "$OUT"
t0=$(date +%s)
. "$(dirname "$0")/env.sh"
[ -f .carry/shared.tar.xz ] && mkdir -p "$work/shared" && tar -C "$work/shared" -xJf .carry/shared.tar.xz
export MMFP4_SHARED_DIR=$work/shared
# Without cuBLAS (env.sh) prefill stays on the tile kernels and the cuBLAS tests skip.
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null) $(git status --short 2>/dev/null | wc -l) changed files"
  echo "cuBLAS: ${cub:-no pip wheel; from /usr/local/cuda/lib64 if the toolkit has it} ($(ls /usr/local/cuda/lib64/libcublas.so.* ${cub:+$cub/libcublas.so.*} 2>/dev/null | head -1))"
  ls "$work/shared" "$work/shared/"* 2>/dev/null | head -30
} > "$OUT/env.txt" 2>&1
run() {  # name, timeout, command...
  local name=$1 limit=$2
  shift 2
  local s=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "rc=$? ${name} $(( $(date +%s) - s ))s" >> "$OUT/summary.txt"
}
: > "$OUT/summary.txt"
has() { case ",$TESTS," in *,$1,*) return 0;; esac; return 1; }
ops_cmd="'$work/bin/test_cuda_repack' && '$work/bin/test_cuda_ops' ${GTEST_FILTER:+--gtest_filter=$GTEST_FILTER}"
has ops && run ops 300 bash -c "$ops_cmd"
has ops_old && run ops_old 300 env MMFP4_CUDA_FAST=0 bash -c "$ops_cmd"
# The SASS of the linear kernels (instruction mix of the inner loops), when asked for.
if has sass; then
  sass_of "$W/test_cuda_ops" "${SASS_PAT:-gemm_mma_kernel}" > "$OUT/sass.txt"
  echo "rc=$? sass $(grep -c 'HMMA' "$OUT/sass.txt") HMMA lines" >> "$OUT/summary.txt"
  xz -T2 "$OUT/sass.txt"
fi
has models && run models 300 "$work/bin/test_cuda_models" ${MODEL_FILTER:+--gtest_filter=$MODEL_FILTER}
has models_old && run models_old 300 env MMFP4_CUDA_FAST=0 "$work/bin/test_cuda_models" ${MODEL_FILTER:+--gtest_filter=$MODEL_FILTER}
has models_kvf32 && run models_kvf32 300 env MMFP4_CUDA_KV=f32 "$work/bin/test_cuda_models" ${MODEL_FILTER:+--gtest_filter=$MODEL_FILTER}
if has bench; then
  # BENCH_MODES: activations as hi+lo halves (split, the default) and/or one bf16 value.
  for mode in ${BENCH_MODES:-split bf16}; do
    echo "## MMFP4_CUDA_GEMM=$mode" >> "$OUT/bench.log"
    s=$(date +%s)
    MMFP4_CUDA_GEMM=$mode timeout 300 "$work/bin/bench_cuda_linear" $( [ "$mode" = split ] && echo --out "$OUT/bench.json" ) $BENCH_ARGS >> "$OUT/bench.log" 2>&1
    echo "rc=$? bench-$mode $(( $(date +%s) - s ))s" >> "$OUT/summary.txt"
  done
fi
has decode && run decode ${DECODE_LIMIT:-300} "$work/bin/bench_cuda_decode" --out "$OUT/decode.json" $DECODE_ARGS
# Prefill with single-bf16 activations in the large tiled GEMMs (MMFP4_CUDA_PREFILL_BF16=1, off by default).
has prefill_bf16 && [ -d /tmp/glm ] && run prefill_bf16 ${DECODE_LIMIT:-300} env MMFP4_CUDA_PREFILL_BF16=1 "$work/bin/bench_cuda_decode" --model /tmp/glm --batches 1 --steps 8 --out "$OUT/prefill_bf16.json"
# The user-facing benchmark: `mmfp4 bench --device cuda` on the same full-size model (carried with CLI=1).
if has cli_bench && [ -x "$work/bin/mmfp4" ]; then
  export LD_LIBRARY_PATH=$work/lib:${LD_LIBRARY_PATH:-}
  [ -f /tmp/glm/config.json ] || run cli_synth 300 "$work/bin/mmfp4" synth --like glm-4.7-flash /tmp/glm
  run cli_bench ${DECODE_LIMIT:-400} "$work/bin/mmfp4" bench -m /tmp/glm --device cuda -p 2048 -n 128 -b 1,16,64 \
      -r ${CLI_REPS:-3} --json-out "$OUT/cli_bench.json"
fi
# CPU vs CUDA through the CLI on the carried trained models (carry with CLI=1 and their tokenizers): perplexity of a
# text and a greedy continuation, each on both devices of this machine.
if has cli_ppl && [ -x "$work/bin/mmfp4" ]; then
  export LD_LIBRARY_PATH=$work/lib:${LD_LIBRARY_PATH:-}
  for m in "$work"/shared/models/*; do
    [ -f "$m/tokenizer.json" ] || continue
    for dev in cpu cuda; do
      echo "## $(basename "$m") $dev" >> "$OUT/cli_ppl.log"
      timeout 120 "$work/bin/mmfp4" perplexity --device $dev -m "$m" -f docs/architecture.md --ctx 128 >> "$OUT/cli_ppl.log" 2>&1
      timeout 120 "$work/bin/mmfp4" generate --device $dev -m "$m" -p "The history of the" -n 40 --json 2>/dev/null \
        | tail -n 1 | python3 -c "import json,sys; print('generated_ids', json.load(sys.stdin)['generated_ids'])" \
        >> "$OUT/cli_ppl.log" 2>&1
    done
  done
  echo "rc=0 cli_ppl" >> "$OUT/summary.txt"
fi
# Per-kernel GPU time of graph-replayed decode (batch 1) and of a 2,048-token prefill, when nsys is on the machine.
if has nsys && [ -d /tmp/glm ]; then
  NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
  if [ -n "$NSYS" ]; then
    for what in decode prefill; do
      if [ $what = decode ]; then args="--batches 1 --steps 64 --prefill 0"; else args="--batches 1 --steps 1 --prefill 2048"; fi
      timeout 240 "$NSYS" profile -o /tmp/prof_$what --force-overwrite true --cuda-graph-trace=node -t cuda \
        "$work/bin/bench_cuda_decode" --model /tmp/glm $args > "$OUT/nsys_$what.log" 2>&1
      "$NSYS" stats --report cuda_gpu_kern_sum --format csv -o "$OUT/kern_$what" /tmp/prof_$what.nsys-rep \
        >> "$OUT/nsys_$what.log" 2>&1
      echo "rc=$? nsys_$what" >> "$OUT/summary.txt"
    done
  else
    echo "rc=1 nsys (not found)" >> "$OUT/summary.txt"
  fi
fi
# Nsight Compute, when asked for (TESTS=...,ncu): the 28672x8192 linear at NCU_M (default 1; pipes, stalls, issue
# slots, memory), and the GPU time of every kernel of one graph-replayed decode step at batch 1 (bench_cuda_decode --ncu).
if has ncu; then
  if [ -n "$NCU" ]; then
    for m in ${NCU_M:-1}; do
      timeout 240 "$NCU" --clock-control none -k regex:gemm_mma_kernel --launch-skip 6 --launch-count 1 \
        --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section InstructionStats \
        --section SchedulerStats --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
        "$work/bin/bench_cuda_linear" --shapes ${NCU_SHAPE:-28672x8192} --m $m --quick > "$OUT/ncu_gemv_m$m.txt" 2>&1
      echo "rc=$? ncu_gemv_m$m" >> "$OUT/summary.txt"
    done
    if [ "${NCU_DECODE:-1}" = 1 ]; then
      [ -f /tmp/glm/config.json ] || timeout 300 "$work/bin/bench_cuda_decode" --synth glm-4.7-flash --dir /tmp/glm \
        --batches 1 --steps 2 --prefill 0 > "$OUT/ncu_decode.err" 2>&1
      timeout 300 "$NCU" --clock-control none --profile-from-start off --graph-profiling node \
        --cache-control none --metrics gpu__time_duration.sum --csv "$work/bin/bench_cuda_decode" --model /tmp/glm --batches 1 --steps 2 \
        --prefill 0 --ncu 1 > "$OUT/ncu_decode.csv" 2>> "$OUT/ncu_decode.err"
      echo "rc=$? ncu_decode" >> "$OUT/summary.txt"
    fi
  else
    echo "rc=1 ncu (not found)" >> "$OUT/summary.txt"
  fi
fi
# A bf16 mma probe: are subnormal A inputs kept (the raw-bits MMFP4 fragments rely on it)?
if has probe; then
  nvcc -arch=sm_90a -o /tmp/probe scripts/device/probe_bf16_subnormal.cu > "$OUT/probe.log" 2>&1 && /tmp/probe >> "$OUT/probe.log" 2>&1
  echo "rc=$? probe" >> "$OUT/summary.txt"
fi
# A/B of single fast paths (one switch off at a time) on the big GEMVs and the full-size model, same run.
if has ab; then
  [ -f /tmp/glm/config.json ] || timeout 300 "$work/bin/bench_cuda_decode" --synth glm-4.7-flash --dir /tmp/glm \
    --batches 1 --steps 2 --prefill 0 > /dev/null 2>&1
  for cfg in ${AB_CFGS:-default MMFP4_CUDA_FAST_DEQUANT=0 MMFP4_CUDA_FAST_PREP=0 MMFP4_CUDA_FAST_PDL=0 MMFP4_CUDA_FAST_ATTN=0}; do
    e=(); [ "$cfg" = default ] || e=("$cfg")
    echo "## $cfg" >> "$OUT/ab.log"
    [ "${AB_LINEAR:-1}" = 1 ] && env "${e[@]}" timeout 120 "$work/bin/bench_cuda_linear" ${AB_LINEAR_ARGS:---shapes big --m 1,16} 2>&1 | grep -E "^[0-9g]" >> "$OUT/ab.log"
    [ -d /tmp/glm ] && env "${e[@]}" timeout 200 "$work/bin/bench_cuda_decode" --model /tmp/glm ${AB_DECODE_ARGS:---batches 1,64 --steps 32 --prefill 2048} 2>&1 | grep -E "^decode|^prefill" >> "$OUT/ab.log"
  done
  echo "rc=0 ab" >> "$OUT/summary.txt"
fi
# The same model with every path added after commit e568e9c off (MMFP4_CUDA_FAST=0): the A/B of this run.
has decode_old && [ -d /tmp/glm ] && run decode_old ${DECODE_LIMIT:-300} env MMFP4_CUDA_FAST=0 "$work/bin/bench_cuda_decode" --out "$OUT/decode_old.json" $DECODE_OLD_ARGS

echo "==== env"; head -3 "$OUT/env.txt"
echo "==== runs ($(( $(date +%s) - t0 ))s)"; cat "$OUT/summary.txt"
for f in ops ops_old models models_old models_kvf32; do
  [ -f "$OUT/$f.log" ] || continue
  echo "==== $f"
  grep -E "^\[  (PASSED|FAILED) |^  [a-z]|^    case|DIVERGED|Failure|Expected|actual" "$OUT/$f.log" | grep -v "^\[  FAILED  \].*(" | head -${LINES_PER_LOG:-40}
done
[ -f "$OUT/bench.log" ] && { echo "==== bench (the bars: 28672x8192 M=1 >= 2.6 TB/s, M=16 <= 1.3x M=1 time, M=4096 ratio >= 0.6)"; grep -E "^## |^device|^shape|^28672x8192|^glm\.[a-z_]+ +(1|16|4096) " "$OUT/bench.log" | head -70; }
if [ -f "$OUT/decode.log" ]; then
  echo "==== decode (bars: batch 1 >= 300 tokens/s, prefill 2048 >= 10000 tokens/s)"
  grep -E "^decode batch|^prefill|^first request|^load" "$OUT/decode.log"
  # Per-op time of the profiled decode step (the second forward after the marker), largest first.
  awk '/---- profile/{p=1; n=0} p && /mmfp4 debug: embed /{n++}
       p && n==2 && /mmfp4 debug:/ { op = ($3=="layer") ? $5 : $3; t=$(NF-1); sum[op]+=t; cnt[op]++; tot+=t }
       END { for (o in sum) printf "%-28s %8.3f ms  x%d\n", o, sum[o], cnt[o]; printf "%-28s %8.3f ms\n", "ALL", tot }' \
    "$OUT/decode.log" | sort -k2 -nr | head -16
  echo "==== prefill per-op profile (eager, synchronised)"
  awk '/---- profile prefill/{p=1} p && /mmfp4 debug:/ { op = ($3=="layer") ? $5 : $3; t=$(NF-1); sum[op]+=t; cnt[op]++; tot+=t }
       END { for (o in sum) printf "%-28s %8.3f ms  x%d\n", o, sum[o], cnt[o]; printf "%-28s %8.3f ms\n", "ALL", tot }' \
    "$OUT/decode.log" | sort -k2 -nr | head -16
fi
[ -f "$OUT/cli_bench.log" ] && { echo "==== mmfp4 bench --device cuda"; grep -vE "^\s*$" "$OUT/cli_bench.log" | tail -n 20; }
[ -f "$OUT/ab.log" ] && { echo "==== A/B of single switches"; cat "$OUT/ab.log"; }
[ -f "$OUT/cli_ppl.log" ] && { echo "==== CLI cpu vs cuda"; grep -E "^## |^perplexity|^generated_ids" "$OUT/cli_ppl.log"; }
for f in "$OUT"/kern_*.csv; do
  [ -f "$f" ] || continue
  echo "==== $(basename "$f") (time %, total ns, instances, avg ns, name)"
  python3 - "$f" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
h = rows[0]
ix = {k: h.index(k) for k in h}
for r in rows[1:25]:
    print("%5s%% %12s %7s %10s  %s" % (r[ix.get("Time (%)", 0)], r[ix.get("Total Time (ns)", 1)],
          r[ix.get("Instances", 2)], r[ix.get("Avg (ns)", 3)], r[-1][:110]))
PY
done
[ -f "$OUT/prefill_bf16.log" ] && { echo "==== prefill with MMFP4_CUDA_PREFILL_BF16=1"; grep -E "^prefill" "$OUT/prefill_bf16.log"; }
[ -f "$OUT/decode_old.log" ] && { echo "==== decode with MMFP4_CUDA_FAST=0 (the earlier kernels, same run)"; grep -E "^decode batch|^prefill" "$OUT/decode_old.log"; }
exit 0
