// Probe (device measurement, not part of the build): e4m3 weights decoded in registers (5 operations per word of 8
// codes, probe_fp8.cuh's e4m3_pair) fed to wgmma m64n8k32 (A from registers, B = activations in shared memory),
// against the engine's bf16 mma.sync loop (probe_fp8_loop.cu V0/V1: 1,963 / 1,733 cycles per pair of stages on the
// H100). On sm_90 mma.sync with e4m3 operands is emulated (probe_fp8_loop.cu V2/V7); wgmma is the native fp8 path
// (QGMMA). First a layout check against a host product (one warpgroup, random codes and e4m3 activations, subnormal
// codes included), then the loop alone: 12 tiles x 2 warps per block (6 warpgroups of 4 tiles), 8 stages of 256
// columns resident in shared memory, repeated.
// H100 (bench/results/cuda-ab-session17-6fcfd80.txt, part 5): 1,588 cycles per pair at 12 tiles per SM (1,323 at the
// engine's 10), outputs within 2^-12.2 of the sum of |a b| (the fp8 tensor path adds with ~14 bits).
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Isrc -o /tmp/probe_fp8_wgmma \
//     scripts/device/probe_fp8_wgmma.cu
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backend/cuda/common.cuh"
#include "backend/cuda/wgmma.cuh"
#include "probe_fp8.cuh"
#include "probe_util.cuh"

using namespace mmfp4::cuda;

// B [8 n][32 k] e4m3 in shared memory, K-major without swizzle: core matrices of 8 rows (n) x 16 bytes (16 k values),
// the two of a k32 step 128 bytes apart: byte (n, k) at (k / 16) * 128 + 16 n + k % 16.
__global__ void check_kernel(const uint32_t* words, const unsigned char* B, float* D) {
  __shared__ __align__(128) unsigned char sb[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) {
    const int n = i / 32, k = i % 32;
    sb[(k / 16) * 128 + 16 * n + k % 16] = B[i];
  }
  wg_fence_smem();
  __syncthreads();
  const int t = threadIdx.x;
  uint32_t a[4];
  e4m3_pair(words[2 * t], a[0], a[1]);
  e4m3_pair(words[2 * t + 1], a[2], a[3]);
  float d[4] = {};
  wg_fence();
  wg_mma_e4m3_n8(d, a, wg_desc(sb, 128, 128), false);
  wg_commit();
  wg_wait<0>();
  for (int i = 0; i < 4; ++i) D[4 * t + i] = d[i];
}

static int check_layout() {
  srand(11);
  static int A[64][32], Bq[8][32];
  for (auto& row : A)
    for (int& x : row) x = random_code();
  for (auto& row : Bq)
    for (int& x : row) x = random_e4m3();
  std::vector<uint32_t> words(256);
  std::vector<unsigned char> B(256);
  for (int t = 0; t < 128; ++t) {
    const int r0 = 16 * (t / 32), lane = t % 32, g = lane >> 2, c = lane & 3;
    uint32_t w0 = 0, w1 = 0;
    for (int j = 0; j < 4; ++j) {
      w0 |= e4m3_code_bits(A[r0 + g][4 * c + j], j, false);
      w0 |= e4m3_code_bits(A[r0 + g + 8][4 * c + j], j, true);
      w1 |= e4m3_code_bits(A[r0 + g][16 + 4 * c + j], j, false);
      w1 |= e4m3_code_bits(A[r0 + g + 8][16 + 4 * c + j], j, true);
    }
    words[2 * t] = w0;
    words[2 * t + 1] = w1;
  }
  for (int n = 0; n < 8; ++n)
    for (int k = 0; k < 32; ++k) B[n * 32 + k] = (unsigned char)Bq[n][k];
  float* dd;
  CHECK(cudaMalloc(&dd, 2048));
  check_kernel<<<1, 128>>>(to_device(words), to_device(B), dd);
  CHECK(cudaGetLastError());
  std::vector<float> d(512);
  CHECK(cudaMemcpy(d.data(), dd, 2048, cudaMemcpyDeviceToHost));
  // The fp8 tensor path adds its products with ~14 bits (a wrong layout is off by the size of the terms): each output
  // against sum |a b| of its 32 products, within 2^-11.
  int bad = 0;
  double worst = 0;
  for (int t = 0; t < 128; ++t)
    for (int i = 0; i < 4; ++i) {
      const int m = 16 * (t / 32) + ((t % 32) >> 2) + (i >= 2 ? 8 : 0), n = 2 * (t % 4) + (i & 1);
      double ref = 0, mag = 0;
      for (int k = 0; k < 32; ++k) {
        const double term = double(e2m1_value(A[m][k])) * std::ldexp(1.0, -6) * e4m3_value(Bq[n][k]);
        ref += term;
        mag += std::fabs(term);
      }
      const double rel = std::fabs(ref - d[4 * t + i]) / (mag + 1e-30);
      worst = std::fmax(worst, rel);
      if (!(rel <= std::ldexp(1.0, -11))) {
        if (bad < 4) std::printf("  D[%d][%d] = %g, host %g\n", m, n, d[4 * t + i], ref);
        ++bad;
      }
    }
  std::printf(
      "wgmma m64n8k32 e4m3 (A registers) layout check: %d of 512 outputs off; worst |D - host| / sum|a b| "
      "%.2e (2^%.1f)\n",
      bad, worst, std::log2(worst));
  return bad;
}

constexpr int T = 12, KW = 2, NQ = 8, SLOTS = 4, TILE = 2048;

// MODE 0: decode + wgmma; 1: wgmma only (the words as A); 2: decode only.
template <int MODE, int WAIT = 0>
__global__ void __launch_bounds__(kWarp* T* KW, 1)
    loop_kernel(const uint32_t* init, int reps, float* out, long long* cyc) {
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* ring = smem;                     // [SLOTS][T][TILE]
  unsigned char* acts = smem + SLOTS * T * TILE;  // [NQ stages][8 k32 items][256 bytes]
  const uint32_t* scales = reinterpret_cast<const uint32_t*>(acts + NQ * 8 * 256);  // [T][16][8]
  for (int i = threadIdx.x; i < (SLOTS * T * TILE + NQ * 8 * 256) / 4 + T * 16 * 8; i += blockDim.x)
    reinterpret_cast<uint32_t*>(smem)[i] = init[i];
  wg_fence_smem();
  __syncthreads();
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, wg = warp / 4;
  const int kw = wg / (T / 4), j = 4 * (wg % (T / 4)) + warp % 4;  // warpgroup: 4 tiles, one kw
  const int g = lane >> 2;
  const uint32_t* sp = scales + j * 16 * 8 + g;
  const uint64_t desc0 = wg_desc(acts, 128, 128);
  float acc[4] = {}, part[2][4] = {};
  uint32_t a[2][4][4];
  uint32_t xacc = 0;
  int n = 0;  // chunk pairs issued
  const long long t0 = clock64();
  for (int r = 0; r < reps; ++r) {
    for (int q = kw; q < NQ; q += KW) {
      const unsigned char* base = ring + (q & (SLOTS - 1)) * T * TILE + j * TILE;
#pragma unroll
      for (int pp = 0; pp < 2; ++pp) {
        const int h = pp;  // buffer of this chunk pair (n and pp have the same parity: 2 per stage)
#pragma unroll
        for (int v = 0; v < 2; ++v) {
          const uint4 w = *reinterpret_cast<const uint4*>(base + (2 * pp + v) * 512 + lane * 16);
#pragma unroll
          for (int b = 0; b < 2; ++b) {
            uint32_t(&f)[4] = a[h][2 * v + b];
            if constexpr (MODE == 1) {
              f[0] = word_of(w, 2 * b);
              f[1] = word_of(w, 2 * b + 1);
              f[2] = f[0] ^ 0x04040404u;
              f[3] = f[1];
            } else {
              e4m3_pair(word_of(w, 2 * b), f[0], f[1]);
              e4m3_pair(word_of(w, 2 * b + 1), f[2], f[3]);
            }
            if constexpr (MODE == 2) xacc ^= f[0] ^ f[1] ^ f[2] ^ f[3];
          }
        }
        if constexpr (MODE != 2) {
#pragma unroll
          for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e) wg_pin(a[h][i][e]);
          wg_fence();
#pragma unroll
          for (int i = 0; i < 4; ++i)
            wg_mma_e4m3_n8(part[h], a[h][i], desc0 + (((q * 8 + 4 * pp + i) * 256) >> 4), i > 0);
          wg_commit();
          wg_wait<WAIT>();  // WAIT 1: the previous chunk pair's group is done (its sums and A registers free)
          const int hd = WAIT ? h ^ 1 : h;
          if (WAIT == 0 || n > 0) {
            const uint32_t sw = sp[((q * 2 + pp + 31) & 15) * 8];
            const float s_lo = f16_bits_to_f32(uint16_t(sw & 0xFFFF)), s_hi = f16_bits_to_f32(uint16_t(sw >> 16));
            acc[0] = fmaf(s_lo, part[hd][0], acc[0]);
            acc[1] = fmaf(s_lo, part[hd][1], acc[1]);
            acc[2] = fmaf(s_hi, part[hd][2], acc[2]);
            acc[3] = fmaf(s_hi, part[hd][3], acc[3]);
          }
          ++n;
        }
      }
    }
  }
  wg_wait<0>();
  const long long t1 = clock64();
  out[blockIdx.x * blockDim.x + threadIdx.x] =
      acc[0] + acc[1] + acc[2] + acc[3] + part[0][0] + part[1][1] + float(xacc & 1);
  if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;
}

template <int MODE, int WAIT = 0>
void run(const char* name, const uint32_t* init, float* out, long long* cyc, int reps) {
  const int threads = kWarp * T * KW, smem = SLOTS * T * TILE + NQ * 8 * 256 + T * 16 * 8 * 4;
  CHECK(cudaFuncSetAttribute(loop_kernel<MODE, WAIT>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const int blocks = 107;  // 1280 tiles / 12
  float ms;
  long long mx;
  time_second_launch([&] { loop_kernel<MODE, WAIT><<<blocks, threads, smem>>>(init, reps, out, cyc); }, cyc, blocks,
                     &ms, &mx);
  const double pairs = double(reps) * NQ / KW;
  // Per pair of stages at 12 tiles per SM; x 10/12 gives the engine's 10 tiles per SM for the same total work.
  std::printf("%-30s %8.3f ms  %7.1f ns per pair of stages (12 tiles/SM)  %6.0f cycles; x10/12 = %6.0f cycles\n", name,
              ms, ms * 1e6 / pairs, mx / pairs, mx / pairs * 10 / 12);
}

int main(int argc, char** argv) {
  const int reps = argc > 1 ? atoi(argv[1]) : 2000;
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs; %d tiles x %d warps per block, %d stages, %d reps\n", prop.name, prop.multiProcessorCount, T,
              KW, NQ, reps);
  const int bad = check_layout();
  const size_t words = (SLOTS * T * TILE + NQ * 8 * 256) / 4 + T * 16 * 8;
  uint32_t* init = to_device(loop_image(words, T * 16 * 8));
  float* out;
  long long* cyc;
  CHECK(cudaMalloc(&out, 132 * 1024 * 4));
  CHECK(cudaMalloc(&cyc, 132 * 8));
  run<0>("e4m3 decode + wgmma, wait 0", init, out, cyc, reps);
  run<0, 1>("e4m3 decode + wgmma, wait 1", init, out, cyc, reps);
  run<1>("wgmma only, wait 0", init, out, cyc, reps);
  run<1, 1>("wgmma only, wait 1", init, out, cyc, reps);
  run<2>("e4m3 decode only", init, out, cyc, reps);
  return bad ? 1 : 0;
}
