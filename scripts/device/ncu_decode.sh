#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .carry/ made by scripts/device/prepare_carry.sh: Nsight
# Compute on graph-replayed decode of the full-size synthetic GLM-4.7-Flash (made in /tmp/glm if missing).
#   NCU_BATCHES="1 64" OUT=... scripts/device/ncu_decode.sh
#     the GPU time of every kernel of one decode step at each batch (kernels serialised: an upper bound of each
#     one's share), summed by kernel and launch shape, largest first; the CSVs keep the launch order.
#   NCU_KERNELS="attention_staged gemm_mma_kernel" NCU_SKIP=17 OUT=... scripts/device/ncu_decode.sh
#     one launch of each regex at batch 1, counted from the start of one decode step (the order is in the CSVs
#     above): speed of light, occupancy, warp states, and the SASS with where its warps stall (src_*.csv.xz).
#   NCU_BATCHES=64 NCU_KERNELS=gemm_mma_kernel NCU_GRID="(24, 96, 1)" NCU_NTH=3 OUT=... scripts/device/ncu_decode.sh
#     the same for the NCU_NTH-th launch of that grid at the last of NCU_BATCHES (the skip found in its step CSV).
set -u
OUT=${OUT:-/tmp/mmfp4-out}
mkdir -p "$OUT"
. "$(dirname "$0")/env.sh"
[ -f /tmp/glm/config.json ] || timeout 300 "$work/bin/bench_cuda_decode" --synth glm-4.7-flash --dir /tmp/glm \
  --batches 1 --steps 2 --prefill 0 > "$OUT/synth.log" 2>&1
bench=("$work/bin/bench_cuda_decode" --model /tmp/glm --steps 2 --prefill 0 --ncu 1)
for b in ${NCU_BATCHES:-}; do
  timeout 400 "$NCU" --clock-control none --profile-from-start off --graph-profiling node --cache-control none \
    --metrics gpu__time_duration.sum --csv "${bench[@]}" --batches "$b" --ncu-batch "$b" > "$OUT/ncu_step_b$b.csv" \
    2> "$OUT/ncu_step_b$b.err"
  echo "== batch $b (rc $?)"
  python3 - "$OUT/ncu_step_b$b.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
rows = rows[next(i for i, r in enumerate(rows) if r[0] == "ID"):]
ix = {k: i for i, k in enumerate(rows[0])}
tot = collections.defaultdict(float); cnt = collections.Counter()
for r in rows[1:]:
    if r[ix["Metric Name"]] != "gpu__time_duration.sum": continue
    key = r[ix["Kernel Name"]].split("(")[0].replace("void ", "")[-60:] + " " + r[ix["Grid Size"]]
    v = float(r[ix["Metric Value"]].replace(",", ""))
    unit = r[ix["Metric Unit"]]
    tot[key] += v / 1000.0 if unit in ("ns", "nsecond") else v if unit in ("us", "usecond") else v * 1000.0
    cnt[key] += 1
s = sum(tot.values())
print("total %.1f us in %d kernels" % (s, sum(cnt.values())))
for k, v in sorted(tot.items(), key=lambda x: -x[1])[:30]:
    print("%9.1f us %5.1f%% x%-4d %s" % (v, 100 * v / s, cnt[k], k))
PY
done
kb=1
for b in ${NCU_BATCHES:-}; do kb=$b; done
for k in ${NCU_KERNELS:-}; do
  skip=${NCU_SKIP:-0}
  if [ -n "${NCU_GRID:-}" ]; then
    skip=$(python3 - "$OUT/ncu_step_b$kb.csv" "$k" "$NCU_GRID" "${NCU_NTH:-1}" <<'PY'
import csv, re, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
rows = rows[next(i for i, r in enumerate(rows) if r[0] == "ID"):]
ix = {k: i for i, k in enumerate(rows[0])}
seen, hits = [], 0
for r in rows[1:]:
    if r[ix["Metric Name"]] != "gpu__time_duration.sum": continue
    base = r[ix["Kernel Name"]].split("(")[0].split("<")[0].replace("void ", "").split("::")[-1]
    if not re.search(sys.argv[2], base): continue
    if r[ix["Grid Size"]] == sys.argv[3]:
        hits += 1
        if hits == int(sys.argv[4]): print(len(seen)); break
    seen.append(1)
PY
)
    echo "== $k grid $NCU_GRID launch ${NCU_NTH:-1} at batch $kb: skip ${skip:-?}"
  fi
  timeout 240 "$NCU" --profile-from-start off --clock-control none -k "regex:$k" --launch-skip "${skip:-0}" \
    --launch-count 1 --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
    --section SchedulerStats --section MemoryWorkloadAnalysis --section SourceCounters --import-source no \
    -o "/tmp/ncu_$k" -f "${bench[@]}" --batches "$kb" --ncu-batch "$kb" > "$OUT/ncu_$k.log" 2>&1
  echo "rc=$? $k" >> "$OUT/ncu_$k.log"
  "$NCU" -i "/tmp/ncu_$k.ncu-rep" --page details >> "$OUT/ncu_$k.log" 2>&1
  "$NCU" -i "/tmp/ncu_$k.ncu-rep" --page source --print-source sass --csv > "$OUT/src_$k.csv" 2>&1
  xz -T2 "$OUT/src_$k.csv"
  grep -hE "rc=|  void|Duration|Elapsed Cycles|SM Active|Registers Per|Achieved Occupancy|Grid Size" "$OUT/ncu_$k.log"
done
