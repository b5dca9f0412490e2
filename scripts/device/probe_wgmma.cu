// Probe (device only): the wgmma wrappers of src/backend/cuda/wgmma.cuh against a host product. One warpgroup
// computes D [64, N] = A [64, K] B [N, K]^T with A from registers (the mma.m16n8k16 A layout per warp) and B staged in
// shared memory as wgmma.cuh documents (core matrices of 8 rows x 16 bytes, N-adjacent 128 bytes apart, K-adjacent
// 16 N bytes apart), for N = 32, 64, 128 (the widths gemm_tiled_wg.cu issues); with operands as the decode's raw
// loop would give them (codes as bf16 bits value * 2^-126, B scaled by 2^64); then with the leading and stride
// offsets swapped (must fail; on the H100 it faults).
// nvcc -std=c++17 -arch=sm_90a -Isrc -o /tmp/probe_wgmma scripts/device/probe_wgmma.cu && /tmp/probe_wgmma
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cuda/wgmma.cuh"

using namespace mmfp4::cuda;

constexpr int K = 64;  // four k16 steps

template <int N>
__global__ void probe(const uint16_t* A, const uint16_t* B, float* D, uint32_t lbo, uint32_t sbo) {
  __shared__ __align__(128) uint16_t sb[N * K];
  for (int i = threadIdx.x; i < N * K; i += blockDim.x) {
    const int n = i / K, k = i % K;
    sb[(k / 8) * 8 * N + 8 * n + k % 8] = B[i];
  }
  wg_fence_smem();
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  float d[N / 2];
  for (int i = 0; i < N / 2; ++i) d[i] = 0.0f;
  const uint64_t desc = wg_desc(sb, lbo, sbo);
  auto el = [&](int r, int k) { return uint32_t(A[(16 * warp + r) * K + k]); };
  uint32_t a[K / 16][4];
  for (int s = 0; s < K / 16; ++s) {
    const int k0 = 16 * s + 2 * c;
    a[s][0] = el(g, k0) | el(g, k0 + 1) << 16;
    a[s][1] = el(g + 8, k0) | el(g + 8, k0 + 1) << 16;
    a[s][2] = el(g, k0 + 8) | el(g, k0 + 9) << 16;
    a[s][3] = el(g + 8, k0 + 8) | el(g + 8, k0 + 9) << 16;
  }
  wg_fence();
#pragma unroll
  for (int s = 0; s < K / 16; ++s) wg_mma<N>(d, a[s], desc + ((2u * 16u * s * N) >> 4), s > 0);
  wg_commit();
  wg_wait<0>();
  for (int j = 0; j < N / 8; ++j)
    for (int i = 0; i < 4; ++i) {
      const int r = 16 * warp + g + (i >= 2 ? 8 : 0), n = 8 * j + 2 * c + (i & 1);
      D[r * N + n] = d[4 * j + i];
    }
}

static uint16_t bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1)) >> 16);
}

template <int N>
static int run(const char* what, bool swap, bool raw, bool expect_ok) {
  std::mt19937 rng(N * 7 + swap + 2 * raw);
  const float codes[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  std::vector<uint16_t> A(64 * K), B(N * K);
  std::vector<double> ref(64 * N, 0.0);
  std::vector<float> a_val(64 * K), b_val(N * K);
  for (int i = 0; i < 64 * K; ++i) {
    const float v = codes[rng() % 8] * ((rng() & 1) ? -1.0f : 1.0f);
    a_val[i] = v;
    A[i] = bf16(raw ? std::ldexp(v, -126) : v);
  }
  for (int i = 0; i < N * K; ++i) {
    const float v = float(int(rng() % 17) - 8) / 8.0f;  // exact in bf16
    b_val[i] = v;
    B[i] = bf16(raw ? std::ldexp(v, 64) : v);
  }
  for (int r = 0; r < 64; ++r)
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) ref[r * N + n] += double(a_val[r * K + k]) * b_val[n * K + k];
  uint16_t *dA, *dB;
  float* dD;
  cudaMalloc(&dA, A.size() * 2);
  cudaMalloc(&dB, B.size() * 2);
  cudaMalloc(&dD, 64 * N * 4);
  cudaMemcpy(dA, A.data(), A.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dB, B.data(), B.size() * 2, cudaMemcpyHostToDevice);
  cudaMemset(dD, 0xFF, 64 * N * 4);
  const uint32_t lbo = swap ? 128u : 16u * N, sbo = swap ? 16u * N : 128u;
  probe<N><<<1, 128>>>(dA, dB, dD, lbo, sbo);
  const cudaError_t e = cudaDeviceSynchronize();
  std::vector<float> D(64 * N);
  cudaMemcpy(D.data(), dD, D.size() * 4, cudaMemcpyDeviceToHost);
  double worst = 0.0;
  for (int i = 0; i < 64 * N; ++i) {
    const double got = raw ? std::ldexp(double(D[i]), 62) : double(D[i]);
    worst = std::fmax(worst, std::isnan(got) ? INFINITY : std::fabs(got - ref[i]));
  }
  const bool ok = e == cudaSuccess && worst == 0.0;
  std::printf("N=%-2d %-34s %s, max |error| %g: %s\n", N, what, cudaGetErrorString(e), worst,
              ok == expect_ok ? "as expected" : "UNEXPECTED");
  cudaFree(dA);
  cudaFree(dB);
  cudaFree(dD);
  return ok == expect_ok ? 0 : 1;
}

int main() {
  int bad = 0;
  bad += run<32>("documented layout", false, false, true);
  bad += run<64>("documented layout", false, false, true);
  bad += run<128>("documented layout", false, false, true);
  bad += run<64>("raw codes (2^-126), B x 2^64", false, true, true);
  bad += run<64>("offsets swapped", true, false, false);  // last: may fault, and a fault ends the context
  std::printf("probe_wgmma: %s\n", bad ? "FAILED" : "wgmma layouts as documented");
  return bad ? 1 : 0;
}
