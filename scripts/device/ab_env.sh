#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .carry/ made by scripts/device/prepare_carry.sh (unpacked
# by env.sh): the linear bench under several environment configurations, alternated ROUNDS times, to compare
# measurement knobs in one process image.
#   AB_ENVS="base:;two:MMFP4_CUDA_WHOLEK_PERSM=2" AB_LINEAR_ARGS="--shapes glm.dense_gate_up --m 1,2,4" ab_env.sh
set -u
. "$(dirname "$0")/env.sh"
IFS=';' read -ra cfgs <<< "${AB_ENVS:?AB_ENVS: name:VAR=v VAR=v;name:...}"
for i in $(seq 1 "${ROUNDS:-2}"); do
  for c in "${cfgs[@]}"; do
    name=${c%%:*}; vars=${c#*:}
    echo "## $name ($vars) round $i"
    env $vars "$W/bench_cuda_linear" ${AB_LINEAR_ARGS:---shapes glm.dense_gate_up --m 1,2,4} 2>&1 \
      | grep -E "^(glm\.|[0-9]+x[0-9]+ |error|fail)"
  done
done
