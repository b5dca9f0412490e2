#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .carry/ made by scripts/device/prepare_carry.sh:
# the CUDA op tests, the whole-model tests on the carried fixtures, and the linear-layer benchmark. Full logs go
# to $OUT (they come back), a short summary is printed last.
#   TESTS=ops,models,bench  BENCH_ARGS="--shapes big --m 1,16"  GTEST_FILTER=...  scripts/device/check_all.sh
set -u
OUT=${OUT:-/tmp/mmfp4-out}
TESTS=${TESTS:-ops,models,bench}
BENCH_ARGS=${BENCH_ARGS:-}
work=/tmp/mmfp4-dev
mkdir -p "$OUT" "$work"
t0=$(date +%s)
tar -C "$work" -xJf .carry/bin.tar.xz
[ -f .carry/shared.tar.xz ] && mkdir -p "$work/shared" && tar -C "$work/shared" -xJf .carry/shared.tar.xz
export MMFP4_SHARED_DIR=$work/shared
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null) $(git status --short 2>/dev/null | wc -l) changed files"
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
case ",$TESTS," in *,ops,*)
  run ops 300 bash -c "'$work/bin/test_cuda_repack' && '$work/bin/test_cuda_ops' ${GTEST_FILTER:+--gtest_filter=$GTEST_FILTER}";;
esac
# The SASS of the linear kernels (instruction mix of the inner loops), when asked for.
case ",$TESTS," in *,sass,*)
  cuobjdump -sass "$work/bin/test_cuda_ops" 2>/dev/null | awk '/Function : .*gemm_mma_kernel/{p=1} /Function : /{if($0 !~ /gemm_mma_kernel/)p=0} p' \
    > "$OUT/sass.txt"
  echo "rc=$? sass $(grep -c 'HMMA' "$OUT/sass.txt") HMMA lines" >> "$OUT/summary.txt";;
esac
case ",$TESTS," in *,models,*) run models 300 "$work/bin/test_cuda_models" ${MODEL_FILTER:+--gtest_filter=$MODEL_FILTER};; esac
# The same with the KV cache in float32 (MMFP4_CUDA_KV=f32), to separate cache rounding from GEMM rounding.
case ",$TESTS," in *,models_kvf32,*)
  export MMFP4_CUDA_KV=f32
  run models_kvf32 300 "$work/bin/test_cuda_models" ${MODEL_FILTER:+--gtest_filter=$MODEL_FILTER}
  unset MMFP4_CUDA_KV;;
esac
case ",$TESTS," in *,bench,*)
  cub=$(python3 -c "import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + '/lib')" 2>/dev/null)
  export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/lib:${cub}:${LD_LIBRARY_PATH:-}
  # BENCH_MODES: activations as hi+lo halves (split, the default) and/or one bf16 value.
  for mode in ${BENCH_MODES:-split}; do
    export MMFP4_CUDA_GEMM=$mode
    echo "## MMFP4_CUDA_GEMM=$mode" >> "$OUT/bench.log"
    s=$(date +%s)
    timeout 300 "$work/bin/bench_cuda_linear" $( [ "$mode" = split ] && echo --out "$OUT/bench.json" ) $BENCH_ARGS >> "$OUT/bench.log" 2>&1
    echo "rc=$? bench-$mode $(( $(date +%s) - s ))s" >> "$OUT/summary.txt"
  done
  unset MMFP4_CUDA_GEMM;;
esac
case ",$TESTS," in *,decode,*) run decode ${DECODE_LIMIT:-400} "$work/bin/bench_cuda_decode" --out "$OUT/decode.json" $DECODE_ARGS;; esac
echo "==== env"; head -3 "$OUT/env.txt"
echo "==== summary ($(( $(date +%s) - t0 ))s)"; cat "$OUT/summary.txt"
for f in ops models models_kvf32; do
  [ -f "$OUT/$f.log" ] || continue
  echo "==== $f"
  grep -E "^\[  (PASSED|FAILED) |^  [a-z]|^    case|DIVERGED|Failure|Expected|actual" "$OUT/$f.log" | grep -v "^\[  FAILED  \].*(" | head -${LINES_PER_LOG:-60}
done
[ -f "$OUT/bench.log" ] && { echo "==== bench"; tail -n 60 "$OUT/bench.log"; }
if [ -f "$OUT/decode.log" ]; then
  echo "==== decode"
  grep -v "mmfp4 debug" "$OUT/decode.log" | tail -n 20
  # Per-op time of the profiled decode step (the second forward after the marker), largest first.
  awk '/---- profile/{p=1; n=0} p && /mmfp4 debug: embed /{n++}
       p && n==2 && /mmfp4 debug:/ { op = ($3=="layer") ? $5 : $3; t=$(NF-1); sum[op]+=t; cnt[op]++; tot+=t }
       END { for (o in sum) printf "%-28s %8.3f ms  x%d\n", o, sum[o], cnt[o]; printf "%-28s %8.3f ms\n", "ALL", tot }' \
    "$OUT/decode.log" | sort -k2 -nr | head -20
fi
exit 0
