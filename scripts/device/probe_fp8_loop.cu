// Probe (device measurement, not part of the build): the whole-K consumer loop of gemv_whole_k.cu alone, its codes
// and staged activations resident in shared memory, repeated R times, 10 tiles x 2 consumer warps per block on every
// SM (GLM's dense MLP 20480x2048 at 1..4 rows). Question: is the loop bound by its integer work, and does an
// fp8 (e4m3) path with half the decode operations and half the mma instructions per weight run faster?
//   V 0: the engine's bf16 loop (fp4_fragment_raw, mma m16n8k16, runtime slot division, partial-stage branches)
//   V 1: the same without the division and branches
//   V 2: e4m3: a word's 8 codes -> 2 registers (5 ops), mma m16n8k32 e4m3, one n8 tile (1..2 tokens x 4 pieces)
//   V 3: e4m3 with two n8 tiles (3..4 tokens)
//   V 4 / 5: decode only (bf16 / e4m3), V 6 / 7: mma only (bf16 / e4m3), V 8: V 1 with the activations in registers
// Also checks the e4m3 fragment layout and subnormal codes against a CPU sum (one warp).
// H100, seventeenth session (bench/results/cuda-ab-session17-6fcfd80.txt, part 1), cycles per pair of stages: V0 1,963,
// V1 1,733, V4 1,365, V6 1,038, V8 1,764: the bf16 loop is bound by its decode (integer pipe ~75% busy), not by its
// mma or its shared-memory reads. V2 2,172 and V7 664 ns (V6 574): sm_90 runs mma.sync e4m3 as conversions plus
// f16 mma (ptxas expands it), so the fp8 decode must feed wgmma instead (probe_fp8_wgmma.cu).
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Isrc -o /tmp/probe_fp8 scripts/device/probe_fp8_loop.cu
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backend/cuda/common.cuh"
#include "probe_fp8.cuh"
#include "probe_util.cuh"

using namespace mmfp4::cuda;

constexpr int T = 10, KW = 2, NQ = 8, SLOTS = 4, TILE = 2048;  // bytes of one tile's codes per stage

__device__ __forceinline__ void mma_e4m3(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <int V, int CH = 1>
__global__ void __launch_bounds__(kWarp* T* KW, 1)
    loop_kernel(const uint32_t* init, int reps, int S, int nch_last, float* out, long long* cyc) {
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* ring = smem;                                    // [SLOTS][T][TILE]
  unsigned char* acts = smem + SLOTS * T * TILE;                 // bf16: hi/lo rows; e4m3: [2 tiles][64 k32][32][8]
  uint32_t* scales = reinterpret_cast<uint32_t*>(acts + 32768);  // [T][16 groups][8]
  for (int i = threadIdx.x; i < (SLOTS * T * TILE + 32768) / 4 + T * 16 * 8; i += blockDim.x)
    reinterpret_cast<uint32_t*>(smem)[i] = init[i];
  __syncthreads();
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, j = warp % T, kw = warp / T;
  const int g = lane >> 2, c = lane & 3;
  const uint32_t* sp = scales + j * 16 * 8 + g;
  float acc[2][4] = {};
  uint32_t xacc = 0;
  const long long t0 = clock64();
  for (int r = 0; r < reps; ++r) {
    for (int q = kw; q < NQ; q += KW) {
      int slot, nch;
      if constexpr (V == 0) {
        slot = q % S;
        nch = q == NQ - 1 ? nch_last : 4;
      } else {
        slot = q & (SLOTS - 1);
        nch = 4;
      }
      const unsigned char* base = ring + slot * T * TILE + j * TILE;
#pragma unroll
      for (int pp = 0; pp < 2; ++pp) {
        if (V == 0 && 2 * pp >= nch) break;
        float part[2][4] = {}, chain[CH][4] = {};
#pragma unroll
        for (int v = 0; v < 2; ++v) {
          if (V == 0 && 2 * pp + v >= nch) break;
          const uint4 w = *reinterpret_cast<const uint4*>(base + (2 * pp + v) * 512 + lane * 16);
#pragma unroll
          for (int b = 0; b < 2; ++b) {
            const int kb = 2 * (2 * pp + v) + b;  // k32 item of the stage
            if constexpr (V <= 1 || V == 4 || V == 6 || V == 8) {
              uint32_t a0[4], a1[4];
              if constexpr (V == 6) {
                for (int i = 0; i < 4; ++i) a0[i] = a1[i] = word_of(w, i);
              } else {
                fp4_fragment_raw(word_of(w, 2 * b), a0);
                fp4_fragment_raw(word_of(w, 2 * b + 1), a1);
              }
              if constexpr (V == 4) {
                xacc ^= a0[0] ^ a0[1] ^ a0[2] ^ a0[3] ^ a1[0] ^ a1[1] ^ a1[2] ^ a1[3];
              } else {
                // the engine's staged row of one token: hi at 0, lo 2080 values on (stage_lo_offset: other banks)
                const uint16_t* xrow = reinterpret_cast<const uint16_t*>(acts) + 8 * c + ((g & 1) ? 2080 : 0);
                const uint4 x = V == 8 ? make_uint4(w.x ^ lane, w.y, w.z, kb)
                                       : *reinterpret_cast<const uint4*>(xrow + (2 * 4 * q + kb) * 32);
                if constexpr (CH == 1) {
                  mma_bf16_16816(part[0], a0, x.x, x.y);
                  mma_bf16_16816(part[0], a1, x.z, x.w);
                } else {  // independent accumulators: mma i of the chunk pair into chain i % CH
                  mma_bf16_16816(chain[(4 * v + 2 * b) % CH], a0, x.x, x.y);
                  mma_bf16_16816(chain[(4 * v + 2 * b + 1) % CH], a1, x.z, x.w);
                }
              }
            } else {
              uint32_t a[4];
              if constexpr (V == 7) {
                for (int i = 0; i < 4; ++i) a[i] = word_of(w, i);
              } else {
                e4m3_pair(word_of(w, 2 * b), a[0], a[1]);
                e4m3_pair(word_of(w, 2 * b + 1), a[2], a[3]);
              }
              if constexpr (V == 5) {
                xacc ^= a[0] ^ a[1] ^ a[2] ^ a[3];
              } else {
                const uint2* xs = reinterpret_cast<const uint2*>(acts) + (8 * q + kb) * 32 + lane;
                const uint2 x = xs[0];
                mma_e4m3(part[0], a, x.x, x.y);
                if constexpr (V == 3) {
                  const uint2 x1 = xs[64 * 32];
                  mma_e4m3(part[1], a, x1.x, x1.y);
                }
              }
            }
          }
        }
        if constexpr (CH > 1) {
#pragma unroll
          for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int h = 0; h < CH; ++h) part[0][i] += chain[h][i];
        }
        if constexpr (V != 4 && V != 5) {
          const uint32_t sw = sp[(q * 2 + pp) * 8];
          if constexpr (V == 2 || V == 3 || V == 7) {
            const float as = reinterpret_cast<const float*>(scales)[(q * 2 + pp) & 15];  // the group's act scale
            const float s_lo = f16_bits_to_f32(uint16_t(sw & 0xFFFF)) * as,
                        s_hi = f16_bits_to_f32(uint16_t(sw >> 16)) * as;
#pragma unroll
            for (int t = 0; t < (V == 3 ? 2 : 1); ++t) {
              acc[t][0] = fmaf(s_lo, part[t][0], acc[t][0]);
              acc[t][1] = fmaf(s_lo, part[t][1], acc[t][1]);
              acc[t][2] = fmaf(s_hi, part[t][2], acc[t][2]);
              acc[t][3] = fmaf(s_hi, part[t][3], acc[t][3]);
            }
          } else {
            float(&a1)[1][4] = reinterpret_cast<float(&)[1][4]>(acc[0]);
            float(&p1)[1][4] = reinterpret_cast<float(&)[1][4]>(part[0]);
            add_scaled(a1, p1, sw);
          }
        }
      }
      __syncwarp();
    }
  }
  const long long t1 = clock64();
  out[blockIdx.x * blockDim.x + threadIdx.x] =
      acc[0][0] + acc[0][1] + acc[0][2] + acc[0][3] + acc[1][0] + acc[1][3] + float(xacc & 1);
  if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;
}

// One warp: A = 16x32 random codes in the e4m3 layout, B = 32x8 random e4m3 bytes -> D, against the CPU.
__global__ void check_kernel(const uint32_t* words, const uint32_t* bregs, float* d) {
  const int lane = threadIdx.x;
  uint32_t a[4];
  e4m3_pair(words[2 * lane], a[0], a[1]);
  e4m3_pair(words[2 * lane + 1], a[2], a[3]);
  float acc[4] = {};
  mma_e4m3(acc, a, bregs[2 * lane], bregs[2 * lane + 1]);
  for (int i = 0; i < 4; ++i) d[4 * lane + i] = acc[i];
}

static int check_layout() {
  srand(7);
  int A[16][32], Bq[32][8];
  for (auto& row : A)
    for (int& x : row) x = random_code();
  for (auto& row : Bq)
    for (int& x : row) x = random_e4m3();
  std::vector<uint32_t> words(64), bregs(64);
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, c = lane & 3;
    uint32_t w0 = 0, w1 = 0, b0 = 0, b1 = 0;
    for (int jj = 0; jj < 4; ++jj) {
      w0 |= e4m3_code_bits(A[g][4 * c + jj], jj, false);
      w0 |= e4m3_code_bits(A[g + 8][4 * c + jj], jj, true);
      w1 |= e4m3_code_bits(A[g][16 + 4 * c + jj], jj, false);
      w1 |= e4m3_code_bits(A[g + 8][16 + 4 * c + jj], jj, true);
      b0 |= uint32_t(Bq[4 * c + jj][g]) << (8 * jj);
      b1 |= uint32_t(Bq[16 + 4 * c + jj][g]) << (8 * jj);
    }
    words[2 * lane] = w0;
    words[2 * lane + 1] = w1;
    bregs[2 * lane] = b0;
    bregs[2 * lane + 1] = b1;
  }
  float* dd;
  CHECK(cudaMalloc(&dd, 512));
  check_kernel<<<1, 32>>>(to_device(words), to_device(bregs), dd);
  std::vector<float> d(128);
  CHECK(cudaMemcpy(d.data(), dd, 512, cudaMemcpyDeviceToHost));
  int bad = 0;
  double maxerr = 0;
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      const int m = (lane >> 2) + (i >= 2 ? 8 : 0), n = 2 * (lane & 3) + (i & 1);
      double ref = 0;
      for (int k = 0; k < 32; ++k) ref += double(e2m1_value(A[m][k])) * std::ldexp(1.0, -6) * e4m3_value(Bq[k][n]);
      const double err = std::fabs(ref - d[4 * lane + i]);
      maxerr = std::fmax(maxerr, err / (std::fabs(ref) + 1e-30));
      if (err > 1e-6 * (std::fabs(ref) + 1e-3)) ++bad;
    }
  std::printf("e4m3 layout check: %d of 128 outputs off, max relative error %.3g\n", bad, maxerr);
  return bad;
}

template <int V, int CH = 1>
void run(const char* name, const uint32_t* init, float* out, long long* cyc, int reps) {
  const int threads = kWarp * T * KW, smem = SLOTS * T * TILE + 32768 + T * 16 * 8 * 4;
  CHECK(cudaFuncSetAttribute((loop_kernel<V, CH>), cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  int sms;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  float ms;
  long long mx;
  time_second_launch([&] { (loop_kernel<V, CH>)<<<sms, threads, smem>>>(init, reps, SLOTS, 4, out, cyc); }, cyc, sms,
                     &ms, &mx);
  const double pairs = double(reps) * NQ / KW;  // a pair: each consumer warp one stage
  std::printf("V%d/%d %-34s %8.3f ms  %7.1f ns per pair of stages  %6.0f cycles per pair (max over SMs)\n", V, CH, name,
              ms, ms * 1e6 / pairs, mx / pairs);
}

int main(int argc, char** argv) {
  const int reps = argc > 1 ? atoi(argv[1]) : 2000;
  const int only = argc > 2 ? atoi(argv[2]) : -1;
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs; loop of %d tiles x %d warps per block, %d stages, %d reps\n", prop.name,
              prop.multiProcessorCount, T, KW, NQ, reps);
  const int bad = check_layout();
  const size_t words = (SLOTS * T * TILE + 32768) / 4 + T * 16 * 8;
  uint32_t* init = to_device(loop_image(words, T * 16 * 8));
  float* out;
  long long* cyc;
  CHECK(cudaMalloc(&out, 132 * 1024 * 4));
  CHECK(cudaMalloc(&cyc, 132 * 8));
  if (only < 0 || only == 0) run<0>("bf16 engine loop", init, out, cyc, reps);
  if (only < 0 || only == 1) run<1>("bf16, no division / branches", init, out, cyc, reps);
  if (only < 0 || only == 2) run<2>("e4m3, 1 n-tile (1..2 tokens)", init, out, cyc, reps);
  if (only < 0 || only == 3) run<3>("e4m3, 2 n-tiles (3..4 tokens)", init, out, cyc, reps);
  if (only < 0 || only == 4) run<4>("bf16 decode only", init, out, cyc, reps);
  if (only < 0 || only == 5) run<5>("e4m3 decode only", init, out, cyc, reps);
  if (only < 0 || only == 6) run<6>("bf16 mma only", init, out, cyc, reps);
  if (only < 0 || only == 7) run<7>("e4m3 mma only", init, out, cyc, reps);
  if (only < 0 || only == 8) run<8>("bf16 clean, activations in registers", init, out, cyc, reps);
  return bad ? 1 : 0;
}
