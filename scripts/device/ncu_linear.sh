#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .carry/ made by scripts/device/prepare_carry.sh: Nsight
# Compute on one launch of one linear kernel of bench_cuda_linear (pipes, issue slots, warp states, and the SASS with
# where its warps stall), and that kernel's SASS by cuobjdump.
#   NCU_KERNEL=gemm_whole_k_kernel NCU_SHAPE=glm.dense_gate_up NCU_M=1 [NCU_ENV="MMFP4_CUDA_WHOLEK_KW=1"] \
#     OUT=... scripts/device/ncu_linear.sh
# Kernels run one at a time under ncu (no PDL overlap, weights cold): read the pipes and stalls, not the time. The
# caches are left as the previous launch left them (NCU_CACHE=none, the default): with ncu's own default (all, flushed
# before the launch) every instruction is fetched from DRAM once, and the straight-line code a launch runs once (the
# staging) showed fetch stalls that the back-to-back launches do not have (bench/results/cuda-ab-session22-2221abf.txt).
set -u
OUT=${OUT:-/tmp/mmfp4-out}
mkdir -p "$OUT"
. "$(dirname "$0")/env.sh"
k=${NCU_KERNEL:-gemm_whole_k_kernel}
tag=${NCU_TAG:-${NCU_SHAPE:-glm.dense_gate_up}_m${NCU_M:-1}}
sass_of "$W/bench_cuda_linear" "$k" > "$OUT/sass_$k.txt"
xz -f -T2 "$OUT/sass_$k.txt"
env ${NCU_ENV:-} timeout 240 "$NCU" --clock-control none --cache-control "${NCU_CACHE:-none}" -k "regex:$k" \
  --launch-skip "${NCU_SKIP:-6}" --launch-count 1 --section SpeedOfLight --section ComputeWorkloadAnalysis \
  --section InstructionStats --section WarpStateStats \
  --section SchedulerStats --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
  --section SourceCounters --import-source no -o "/tmp/ncu_$tag" -f \
  "$W/bench_cuda_linear" --shapes "${NCU_SHAPE:-glm.dense_gate_up}" --m "${NCU_M:-1}" --quick \
  > "$OUT/ncu_$tag.log" 2>&1
echo "rc=$? ncu $k $tag" >> "$OUT/ncu_$tag.log"
"$NCU" -i "/tmp/ncu_$tag.ncu-rep" --page details >> "$OUT/ncu_$tag.log" 2>&1
"$NCU" -i "/tmp/ncu_$tag.ncu-rep" --page raw --csv > "$OUT/raw_$tag.csv" 2>&1
"$NCU" -i "/tmp/ncu_$tag.ncu-rep" --page source --print-source sass --csv > "$OUT/src_$tag.csv" 2>&1
xz -f -T2 "$OUT/src_$tag.csv" "$OUT/raw_$tag.csv"
grep -hE "rc=|  void|Duration|Elapsed Cycles|Issue Slots Busy|Executed Ipc|Registers Per|Achieved Occupancy" \
  "$OUT/ncu_$tag.log"
