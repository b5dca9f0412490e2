// Probe (device measurement, not part of the build): tensor-core issue rates on the H100 for the decode GEMV's
// shapes. mma.sync m16n8k16 bf16 (f32 accumulation) with 8 independent chains per warp: the same A and B, A changing,
// both changing, B changing (modes 0..3), at 4..24 warps per SM, and with 1..4 chains; wgmma m64n8k16 bf16 with A
// from registers, committed per 16 or per 4. H100, seventeenth session: mma.sync 6.0 cycles per HMMA per SM
// sub-partition (650 TFLOP/s) whatever the operands' reuse, 6.06 with one dependent chain per warp at 20 warps;
// wgmma m64n8k16 13.0 cycles per m16n8k16's worth (301 TFLOP/s; N = 8 is its slowest shape).
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Iscripts/device -o /tmp/probe_mma_rate \
//     scripts/device/probe_mma_rate.cu
#include <cstdint>
#include <cstdio>

#include "probe_util.cuh"

__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// MODE 0: same A, same B; 1: A differs per mma (8 sets), B same; 2: A and B differ; 3: A same, B differs
template <int MODE, int CH>
__global__ void k(int reps, float* out, long long* cyc, uint32_t seed) {
  uint32_t A[8][4], B[8][2];
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 4; ++j) A[i][j] = (seed * (i * 4 + j + 1) + threadIdx.x) & 0x3B3B3B3B;
    B[i][0] = (seed ^ (i * 77 + threadIdx.x)) & 0x3B3B3B3B;
    B[i][1] = B[i][0] * 3 & 0x3B3B3B3B;
  }
  float d[CH][4] = {};
  long long t0 = clock64();
  for (int r = 0; r < reps; ++r) {
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const int ai = MODE == 1 || MODE == 2 ? i % 8 : 0, bi = MODE >= 2 ? i % 8 : 0;
      mma(d[i % CH], A[ai], B[bi][0], B[bi][1]);
    }
  }
  long long t1 = clock64();
  float s = 0;
  for (int c = 0; c < CH; ++c) s += d[c][0] + d[c][1] + d[c][2] + d[c][3];
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
  if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;
}

template <int MODE, int CH>
void run(int warps, float* out, long long* cyc) {
  const int reps = 4000;
  float ms;
  long long c;
  time_second_launch([&] { k<MODE, CH><<<132, warps * 32>>>(reps, out, cyc, 12345); }, cyc, 132, &ms, &c);
  const double hmma_per_smsp = double(reps) * 16 * warps / 4;
  printf("mode %d chains %d warps/SM %2d: %.2f cycles per HMMA per SMSP, %.0f TFLOP/s\n", MODE, CH, warps,
         c / hmma_per_smsp, 132.0 * warps * reps * 16 * 4096 / (ms * 1e9));
}

__device__ __forceinline__ void wgmma8(float (&d)[4], const uint32_t (&a)[4], uint64_t desc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%0,%1,%2,%3}, {%4,%5,%6,%7}, %8, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc)
      : "memory");
}

template <int PER>
__global__ void kw(int reps, float* out, long long* cyc, uint32_t seed) {
  __shared__ __align__(128) uint16_t bs[8 * 16 * 8];
  for (int i = threadIdx.x; i < 1024; i += blockDim.x) bs[i] = 0x3F80;
  __syncthreads();
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  __syncthreads();
  uint32_t A[8][4];
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j) A[i][j] = (seed * (i * 4 + j + 1) + threadIdx.x) & 0x3B3B3B3B;
  const uint32_t sa = static_cast<uint32_t>(__cvta_generic_to_shared(bs));
  const uint64_t desc = uint64_t((sa & 0x3FFFFu) >> 4) | (uint64_t(128 >> 4) << 16) | (uint64_t(128 >> 4) << 32);
  float d[4][4] = {};
  long long t0 = clock64();
  for (int r = 0; r < reps; ++r) {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      wgmma8(d[i % 4], A[i % 8], desc);
      if ((i + 1) % PER == 0) asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  }
  long long t1 = clock64();
  float s = 0;
  for (int c = 0; c < 4; ++c) s += d[c][0] + d[c][1] + d[c][2] + d[c][3];
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
  if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;
}

template <int PER>
void runw(int warps, float* out, long long* cyc) {
  const int reps = 4000;
  float ms;
  long long c;
  time_second_launch([&] { kw<PER><<<132, warps * 32>>>(reps, out, cyc, 12345); }, cyc, 132, &ms, &c);
  const double eq_per_smsp = double(reps) * 16 * 4 * (warps / 4) / 4;  // m16n8k16 equivalents per SMSP
  printf(
      "wgmma m64n8k16 A regs, commit per %d, warps/SM %2d: %.2f cycles per m16n8k16-equivalent per SMSP, %.0f "
      "TFLOP/s\n",
      PER, warps, c / eq_per_smsp, 132.0 * (warps / 4) * reps * 16 * 8192 * 2 / (ms * 1e9));
}

int main() {
  float* out;
  long long* cyc;
  cudaMalloc(&out, 132 * 1024 * 4);
  cudaMalloc(&cyc, 132 * 8);
  for (int w : {4, 8, 20, 24}) {
    run<0, 8>(w, out, cyc);
    run<1, 8>(w, out, cyc);
    run<2, 8>(w, out, cyc);
    run<3, 8>(w, out, cyc);
  }
  for (int w : {4, 8, 20}) {
    runw<16>(w, out, cyc);
    runw<4>(w, out, cyc);
  }
  run<2, 1>(20, out, cyc);
  run<2, 2>(20, out, cyc);
  run<2, 4>(20, out, cyc);
}
