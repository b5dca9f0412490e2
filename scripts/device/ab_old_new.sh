#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .carry/ (unpacked by env.sh): an A/B of two builds,
# the carried binaries (new) against older ones carried as .carry/ab/bench_cuda_{decode,linear}_old.xz (old), each
# pair run twice, alternated, on the full-size synthetic GLM-4.7-Flash (made in /tmp/glm if missing).
#   AB_DECODE_ARGS="--batches 1,4 --steps 64 --prefill 0"  AB_LINEAR_ARGS="--shapes glm --m 1,4"  ab_old_new.sh
# Make the old binaries by building the older commit and: xz -c build-cuda/bench/cuda/bench_cuda_decode >
# .carry/ab/bench_cuda_decode_old.xz (the same for bench_cuda_linear, optional), after prepare_carry.sh.
set -u
. "$(dirname "$0")/env.sh"
xz -dc .carry/ab/bench_cuda_decode_old.xz > /tmp/old_dec && chmod +x /tmp/old_dec
lin=0  # the linear bench too when its old binary was carried
[ -f .carry/ab/bench_cuda_linear_old.xz ] && xz -dc .carry/ab/bench_cuda_linear_old.xz > /tmp/old_lin && chmod +x /tmp/old_lin && lin=1
[ -f /tmp/glm/config.json ] || "$W/bench_cuda_decode" --synth glm-4.7-flash --dir /tmp/glm --batches 1 --steps 2 \
  --prefill 0 > /dev/null 2>&1
for i in 1 2; do
  for v in new old; do
    if [ $v = new ]; then D=$W/bench_cuda_decode; L=$W/bench_cuda_linear; else D=/tmp/old_dec; L=/tmp/old_lin; fi
    echo "## $v (round $i)"
    [ $lin = 1 ] && "$L" ${AB_LINEAR_ARGS:---shapes glm --m 1,4} 2>&1 | grep -E "^(glm\.|[0-9]+x[0-9]+ )"
    "$D" --model /tmp/glm ${AB_DECODE_ARGS:---batches 1,4 --steps 64 --prefill 0} 2>&1 | grep -E "^decode|^prefill"
  done
done
