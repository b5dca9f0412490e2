#!/usr/bin/env bash
# Runs on the GPU machine after check_all.sh has unpacked the carry (TESTS=none is enough): the linear bench under
# several environment configurations, alternated ROUNDS times, to compare measurement knobs in one process image.
#   AB_ENVS="base:;two:MMFP4_CUDA_WHOLEK_PERSM=2" AB_LINEAR_ARGS="--shapes glm.dense_gate_up --m 1,2,4" ab_env.sh
set -u
W=/tmp/mmfp4-dev/bin
cub=$(python3 -c "import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + '/lib')" 2>/dev/null)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/lib:${cub}:${LD_LIBRARY_PATH:-}
IFS=';' read -ra cfgs <<< "${AB_ENVS:?AB_ENVS: name:VAR=v VAR=v;name:...}"
for i in $(seq 1 "${ROUNDS:-2}"); do
  for c in "${cfgs[@]}"; do
    name=${c%%:*}; vars=${c#*:}
    echo "## $name ($vars) round $i"
    env $vars "$W/bench_cuda_linear" ${AB_LINEAR_ARGS:---shapes glm.dense_gate_up --m 1,2,4} 2>&1 \
      | grep -E "^(glm\.|[0-9]+x[0-9]+ |error|fail)"
  done
done
