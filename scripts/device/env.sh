# Sourced by the scripts of scripts/device/ on the GPU machine (from the repository root): where the carry's binaries
# are unpacked ($work/bin, $W; unpacked again whenever the carried archive differs from the one unpacked there, as on
# a machine still warm from an earlier call), and the library path to cuBLAS (the benchmarks' baseline and the
# backend's prefill path, opened with dlopen; the machine has it as a pip wheel: $cub, empty without it). Also
# Nsight Compute ($NCU, empty where missing) and sass_of BINARY PATTERN (the SASS of the kernels whose names match).
work=/tmp/mmfp4-dev
W=$work/bin
mkdir -p "$work"
sum=$(cksum < .carry/bin.tar.xz)
if [ "$(cat "$W/.carried" 2>/dev/null)" != "$sum" ]; then
  rm -rf "$W" && tar -C "$work" -xJf .carry/bin.tar.xz && echo "$sum" > "$W/.carried"
fi
cub=$(python3 -c "import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + '/lib')" 2>/dev/null)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/lib:${cub}:${LD_LIBRARY_PATH:-}
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
sass_of() { cuobjdump -sass "$1" 2>/dev/null | awk -v pat="$2" '/Function : /{p=($0 ~ pat)} p'; }
