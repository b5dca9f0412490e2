// Device helpers shared by the CUDA kernels: bf16/f16 packing, warp reductions, the E2M1 decode and the mma.sync
// wrapper. Included by .cu files only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"

// Kernel launches and dynamic shared memory go through these two macros, so that the same sources also build as
// plain C++ for the CPU simulator of tests/cuda/sim (-DMMFP4_CUDA_SIM=ON), which runs every kernel on the CPU:
//   MMFP4_LAUNCH(grid, block, smem, stream, kernel<T...>)(args...);   MMFP4_DYN_SMEM(float, name);
// MMFP4_NOINLINE: a device function kept out of line (its registers do not count against the caller's).
#ifdef MMFP4_SIM
#define MMFP4_LAUNCH(grid, block, smem, stream, ...) ::mmfp4::sim::Launcher(grid, block, smem, stream, __VA_ARGS__)
#define MMFP4_DYN_SMEM(T, name) T* name = ::mmfp4::sim::dyn_smem<T>()
#define MMFP4_NOINLINE
#else
#define MMFP4_LAUNCH(grid, block, smem, stream, ...) ::mmfp4::cuda::KernelLaunch(grid, block, smem, stream, __VA_ARGS__)
#define MMFP4_DYN_SMEM(T, name) extern __shared__ __align__(16) T name[]
#define MMFP4_NOINLINE __noinline__
#endif

namespace mmfp4::cuda {

constexpr int kWarp = 32;

// Programmatic dependent launch (sm_90; FastPaths::pdl). Kernels are launched with programmatic stream
// serialization when it is on, so the next kernel of the stream (or graph) is scheduled while this one finishes
// instead of after it: at decode, where a step is ~1,300 small dependent kernels, that launch gap is a large part of
// the step. The rule that keeps it correct: every kernel calls pdl_enter() first, before it touches any memory.
// griddepcontrol.wait returns once the previous kernel has completed and its writes are visible, and since every
// kernel waits before it can complete, each one also sees everything earlier in the stream. launch_dependents lets
// the next kernel be scheduled now (it still waits in its own pdl_enter()). Without PDL both are no-ops.
__device__ __forceinline__ void pdl_enter() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum for blockDim.x a multiple of 32 (<= 1024); every thread gets the result. `red` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = 0.0f;
  for (int i = 0; i < nw; ++i) s += red[i];  // fixed order: the same bits on every thread and every run
  return s;
}

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t b) { return __uint_as_float(uint32_t(b) << 16); }
__device__ __forceinline__ float f16_bits_to_f32(uint16_t b) { return __half2float(__ushort_as_half(b)); }

// Two floats -> one register of two bf16 (lo in the low half), round to nearest even.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
// Two floats -> two f16, saturated to +-65504 (an activation past the f16 range must not become inf).
__device__ __forceinline__ uint32_t pack_f16x2_sat(float lo, float hi) {
  lo = fminf(fmaxf(lo, -65504.0f), 65504.0f);
  hi = fminf(fmaxf(hi, -65504.0f), 65504.0f);
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

#ifndef MMFP4_SIM
// kernel<<<grid, block, smem, stream>>>(args...), or the same through cudaLaunchKernelEx with programmatic stream
// serialization when pdl_launches() is on (see pdl_enter). A launch error is left for MMFP4_CUDA_LAUNCHED to report.
template <typename... P>
struct KernelLaunch {
  dim3 g, b;
  size_t sm;
  cudaStream_t st;
  void (*k)(P...);
  KernelLaunch(dim3 g_, dim3 b_, size_t sm_, cudaStream_t st_, void (*k_)(P...)) : g(g_), b(b_), sm(sm_), st(st_), k(k_) {}
  template <typename... A>
  void operator()(A&&... a) const {
    if (!pdl_launches()) {
      k<<<g, b, sm, st>>>(static_cast<A&&>(a)...);
      return;
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = g;
    cfg.blockDim = b;
    cfg.dynamicSmemBytes = sm;
    cfg.stream = st;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    MMFP4_CUDA_CHECK(cudaLaunchKernelEx(&cfg, k, static_cast<A&&>(a)...), "kernel launch (programmatic dependent)");
  }
};
#endif

// Lets kernel K launch with `bytes` of dynamic shared memory (above the 48 KB default). Set once per kernel and
// process: for launchers whose size for K is fixed (a layout constant, or a cap they never exceed).
template <auto K>
void smem_opt_in(int bytes, const char* what) {
  static bool done = false;
  if (done) return;
  MMFP4_CUDA_CHECK(cudaFuncSetAttribute(K, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), what, ": ", bytes,
                   " bytes of shared memory");
  done = true;
}

// silu(g) * u: one definition for the elementwise op and for the GEMM's activation conversion (same bits).
__device__ __forceinline__ float silu_mul_value(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// E2M1 value of a 4-bit code (docs/format.md): bit 3 is the sign.
__device__ __forceinline__ float e2m1_value(uint32_t code) {
  const float mag[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float v = mag[code & 7];
  return (code & 8) ? -v : v;
}

// bf16 bits v * 2^-126 (E2M1 bits placed at bf16 bits 6..8 and 15) -> exact v: one HMUL2 by 2^126 in both halves.
__device__ __forceinline__ uint32_t bf16x2_scale_2p126(uint32_t bits) {
  const uint32_t k_bits = 0x7E807E80u;
  const __nv_bfloat162 v = *reinterpret_cast<const __nv_bfloat162*>(&bits);
  const __nv_bfloat162 k = *reinterpret_cast<const __nv_bfloat162*>(&k_bits);
  const __nv_bfloat162 r = __hmul2(v, k);
  return *reinterpret_cast<const uint32_t*>(&r);
}

// Two E2M1 codes at bits [3:0] and [19:16] of `t` -> two exact bf16 values in one register.
// E2M1 is a tiny float (1 sign, 2 exponent bits with bias 1, 1 mantissa bit). Placing e1 e0 m at bf16 bits
// [8:6] (the lowest exponent bits and the top mantissa bit) and the sign at bit 15 gives the bf16 number
// 2^-126 * value for every code, subnormal 0.5 included; one bf16 multiply by 2^126 makes it exact. That is
// three integer ops and one HMUL2 per two weights instead of a table lookup per weight.
__device__ __forceinline__ uint32_t e2m1x2_to_bf16x2(uint32_t t) {
  const uint32_t mag = (t << 6) & 0x01C001C0u;
  const uint32_t sgn = (t << 12) & 0x80008000u;
  return bf16x2_scale_2p126(mag | sgn);
}

// D = A (16x16, row) * B (16x8, col) + C, bf16 inputs, float32 accumulation.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef MMFP4_SIM
  ::mmfp4::sim::mma16816(d, a, b0, b1, false);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
__device__ __forceinline__ void mma_f16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef MMFP4_SIM
  ::mmfp4::sim::mma16816(d, a, b0, b1, true);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// A hint that the 128-byte line at p will be read soon: fetched into L2 (nothing returns to the thread).
__device__ __forceinline__ void prefetch_l2(const void* p) {
#if defined(__CUDA_ARCH__)
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
#else
  (void)p;
#endif
}

// A 16-byte load of data read exactly once (weights): not kept in L1, so L1 stays for the activations that every
// warp of the block re-reads. (No L2::cache_hint operand: nvcc 13 miscompiles it on sm_90, see MEASURED.md.)
__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
#ifdef MMFP4_SIM
  return *p;
#else
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
#endif
}

// Asynchronous 16-byte global -> shared copies (sm_80+, L2 only: .cg), committed in groups; wait<N> returns when at
// most N of this thread's groups are still in flight. Visibility to other threads needs a barrier after the wait.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
#ifdef MMFP4_SIM
  ::mmfp4::sim::cp_async16(smem, gmem);
#else
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifdef MMFP4_SIM
  ::mmfp4::sim::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#ifdef MMFP4_SIM
  ::mmfp4::sim::cp_async_wait(N);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// ldmatrix.x4 (.trans): lanes 8i..8i+7 give the 16-byte rows of 8x8 b16 matrix i; register i of lane l receives
// (row l/4, columns 2(l%4), +1) of matrix i, or with .trans (rows 2(l%4), +1 of column l/4): the mma fragments.
template <bool TRANS = false>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#ifdef MMFP4_SIM
  ::mmfp4::sim::ldmatrix_x4(r, row, TRANS);
#else
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  if constexpr (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}

// The A fragments (4 registers) of one mma step from the tile word holding it (repack.h: pair i = 2 pr + hi at bits
// [4i, 4i + 4) and [16 + 4i, 16 + 4i + 4)): register i is pair i, the mma.m16n8k16 A layout.
__device__ __forceinline__ void fp4_fragment(uint32_t q, uint32_t (&a)[4]) {
  a[0] = e2m1x2_to_bf16x2(q);
  a[1] = e2m1x2_to_bf16x2(q >> 4);
  a[2] = e2m1x2_to_bf16x2(q >> 8);
  a[3] = e2m1x2_to_bf16x2(q >> 12);
}

// Layout-2 fragments without the HMUL2: the bf16 bits as placed, value * 2^-126 (codes +-0.5 are bf16 subnormals,
// which mma.sync keeps: scripts/device/probe_bf16_subnormal.cu on the H100). The decode GEMV's raw loop multiplies
// the activations by kRawActScale when it stages them and its sums by kRawOutScale (2^126 in all, exact powers of
// two), so nothing underflows while |x| < 2^64 (an fp32 rmsnorm of such rows overflows first).
constexpr float kRawActScale = 0x1p64f, kRawOutScale = 0x1p62f;
__device__ __forceinline__ void fp4_fragment_raw(uint32_t w, uint32_t (&a)[4]) {
  constexpr uint32_t M = 0x81C081C0u;
  a[0] = w & M;
  a[1] = (w << 3) & M;
  a[2] = (w << 6) & M;
  a[3] = ((w << 1) & 0x80008000u) | ((w >> 5) & 0x01000100u) | ((w >> 4) & 0x00C000C0u);
}

// Word i (0..3) of a 16-byte tile fragment: the A fragments of mma step i (repack.h).
__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// acc += scale * part for the mma tile rows g (low half of the f16 scale pair word sw) and g + 8 (high half), over NT
// n8 token tiles.
template <int NT>
__device__ __forceinline__ void add_scaled(float (&acc)[NT][4], const float (&part)[NT][4], uint32_t sw) {
  const float s_lo = f16_bits_to_f32(uint16_t(sw & 0xFFFF)), s_hi = f16_bits_to_f32(uint16_t(sw >> 16));
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    acc[t][0] = fmaf(s_lo, part[t][0], acc[t][0]);
    acc[t][1] = fmaf(s_lo, part[t][1], acc[t][1]);
    acc[t][2] = fmaf(s_hi, part[t][2], acc[t][2]);
    acc[t][3] = fmaf(s_hi, part[t][3], acc[t][3]);
  }
}

// One chunk pair (128 columns, one scale word sw) of a 16-row layout-2 tile times one staged token in paired columns:
// lane column g holds the token's hi half (g even) or its lo half (g odd), xrow is this lane's staged row (hi or lo,
// + 8 c) at the pair's first chunk; acc += sw x the raw products (kRawActScale-scaled activations). The one-token
// kernel's step (gemv_token.cu) and the value projection joined to the decode attention (attention.cu).
__device__ __forceinline__ void paired_chunk_pair(float (&acc)[1][4], const uint4& w0, const uint4& w1, uint32_t sw,
                                                  const uint16_t* xrow) {
  float part[1][4] = {{0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
  for (int v = 0; v < 2; ++v) {
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      uint32_t a0[4], a1[4];
      fp4_fragment_raw(word_of(v ? w1 : w0, 2 * b), a0);
      fp4_fragment_raw(word_of(v ? w1 : w0, 2 * b + 1), a1);
      const uint4 xh = *reinterpret_cast<const uint4*>(xrow + (2 * v + b) * 32);
      mma_bf16_16816(part[0], a0, xh.x, xh.y);
      mma_bf16_16816(part[0], a1, xh.z, xh.w);
    }
  }
  add_scaled(acc, part, sw);
}

// One mma step pair (a0, a1: the A fragments of k32 item kb of a stage) times NT prepared token tiles in shared memory,
// hi and lo (PrepArgs::raw, as the copy engine lands them per stage: xs = this lane's 16 bytes of [hi, lo][NT][8 k32
// items][32 lanes]): part[t] += the raw products. The whole-K launch's 5..16 rows and the streamed MoE GEMVs.
template <int NT>
__device__ __forceinline__ void prepared_step(float (&part)[NT][4], const uint32_t (&a0)[4], const uint32_t (&a1)[4],
                                              const uint4* xs, int kb) {
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const uint4 xh = xs[(t * 8 + kb) * kWarp];
    mma_bf16_16816(part[t], a0, xh.x, xh.y);
    mma_bf16_16816(part[t], a1, xh.z, xh.w);
    const uint4 xl = xs[((NT + t) * 8 + kb) * kWarp];
    mma_bf16_16816(part[t], a0, xl.x, xl.y);
    mma_bf16_16816(part[t], a1, xl.z, xl.w);
  }
}

// The same fragments from a layout-2 word (repack.h, kV2Bit): pairs 0..2 are one mask after a shift of 0, 3, 6, pair
// 3 three shifts and masks (fp4_fragment_raw); then the HMUL2. ~15 operations per word instead of ~23 (integer ops
// issue at half rate on sm_90, and they are what bounds the skinny GEMM at decode).
__device__ __forceinline__ void fp4_fragment_v2(uint32_t w, uint32_t (&a)[4]) {
  fp4_fragment_raw(w, a);
#pragma unroll
  for (int i = 0; i < 4; ++i) a[i] = bf16x2_scale_2p126(a[i]);
}

template <int LAYOUT>
__device__ __forceinline__ void fp4_frag(uint32_t w, uint32_t (&a)[4]) {
  if constexpr (LAYOUT == 2)
    fp4_fragment_v2(w, a);
  else
    fp4_fragment(w, a);
}

// Token tile `tile` of a plain or MoE linear launch (GemmArgs): its expert, first activation row and rows; false
// for a slot of the MoE tile table that is not used this step (the whole block returns: nothing has synchronised).
__device__ __forceinline__ bool token_tile(const GemmArgs& p, int tile, int tm, int& expert, int& row0, int& rows) {
  if (p.tiles.direct) {
    expert = p.tiles.tiles[tile];
    row0 = tile;
    rows = 1;
    return expert >= 0 && expert < p.tiles.n_experts;
  }
  if (p.tiles.tiles) {
    if (tile >= *p.tiles.count) return false;
    expert = p.tiles.tiles[3 * tile];
    row0 = p.tiles.tiles[3 * tile + 1];
    rows = p.tiles.tiles[3 * tile + 2];
    return true;
  }
  expert = 0;
  row0 = tile * tm;
  rows = min(tm, p.m - row0);
  return true;
}

// Split-K and split-KV reductions, "last block finishes" (deterministic): every block of a group writes its partial
// result, then calls splitk_last, which makes the partials visible, counts the block, and returns true in the last
// block of the group to finish (resetting the counter for the next launch or graph replay); that block then reads
// the partials through L2 and adds them in split order.
__device__ __forceinline__ bool splitk_last(int32_t* ctr, int splits) {
  __shared__ int is_last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const int prev = atomicAdd(ctr, 1);
    is_last = prev == splits - 1;
    if (is_last) *ctr = 0;
  }
  __syncthreads();
  const bool last = is_last;
  if (last) __threadfence();
  return last;
}

// The last block's sum for a linear: partials [splits][tm][npad] at `all`; rows [0, rows) x weight rows
// [n0, n0 + 128) (those < n) go to y[(out0 + row) * y_stride + n], added to it when accumulating.
__device__ __forceinline__ void splitk_store(const float* all, int splits, int tm, int64_t npad, int rows, int n0,
                                             int n, float* y, int64_t y_stride, int out0, bool accumulate) {
  for (int idx = threadIdx.x; idx < tm * 128; idx += blockDim.x) {
    const int tok = idx / 128, col = n0 + idx % 128;
    if (tok >= rows || col >= n) continue;
    // The splits' values through L2 (__ldcg: not L1-stale), 8 loads in flight, added in split order.
    const float* src = all + int64_t(tok) * npad + col;
    const int64_t step = int64_t(tm) * npad;
    float v = 0.0f;
    for (int s0 = 0; s0 < splits; s0 += 8) {
      float t[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) t[i] = s0 + i < splits ? __ldcg(src + (s0 + i) * step) : 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i)
        if (s0 + i < splits) v += t[i];
    }
    float* o = y + int64_t(out0 + tok) * y_stride + col;
    *o = accumulate ? *o + v : v;
  }
}

// The tiled GEMMs' results (gemm_tiled.cu, gemm_tiled_wg.cu), token tiles of tm rows and blocks of 128 weight rows:
// one value for token tok (activation row row0 + tok) and weight row n, to y (added when accumulating) or, with K
// splits, to this split's partials `mine` [tm][npad]; then tiled_finish, in which the last split's block of the
// row block adds the partials in split order.
__device__ __forceinline__ void tiled_store(const GemmArgs& p, float* mine, int64_t npad, int row0, int tok, int n,
                                            float v) {
  if (p.splits > 1) {
    mine[int64_t(tok) * npad + n] = v;
  } else if (n < p.w.n) {
    float* o = p.y + int64_t(row0 + tok) * p.y_stride + n;
    *o = p.accumulate ? *o + v : v;
  }
}
__device__ __forceinline__ void tiled_finish(const GemmArgs& p, int tile, int tm, int64_t npad, int rows, int row0) {
  if (p.splits == 1) return;
  const int rb = blockIdx.x;
  if (!splitk_last(p.counters + int64_t(tile) * gridDim.x + rb, p.splits)) return;
  splitk_store(p.partial + int64_t(tile) * p.splits * tm * npad, p.splits, tm, npad, rows, rb * 128, p.w.n, p.y,
               p.y_stride, row0, p.accumulate);
}

// In-register normalized Walsh-Hadamard transform of n = 32 * E values held E per lane (lane l holds elements
// [l*E, l*E + E)), Sylvester order as backend/cpu/fwht.h, float32 butterflies in the same order.
template <int E>
__device__ __forceinline__ void warp_fwht(float (&v)[E], int lane) {
#pragma unroll
  for (int len = 1; len < E; len <<= 1)
#pragma unroll
    for (int i = 0; i < E; ++i)
      if ((i & len) == 0) {
        const float a = v[i], b = v[i + len];
        v[i] = a + b;
        v[i + len] = a - b;
      }
#pragma unroll
  for (int lm = 1; lm < 32; lm <<= 1) {
    const bool upper = (lane & lm) != 0;
#pragma unroll
    for (int i = 0; i < E; ++i) {
      const float o = __shfl_xor_sync(0xffffffffu, v[i], lm);
      v[i] = upper ? o - v[i] : v[i] + o;
    }
  }
  const float s = 1.0f / sqrtf(float(32 * E));  // as the CPU: correctly rounded sqrt and division
#pragma unroll
  for (int i = 0; i < E; ++i) v[i] *= s;
}

}  // namespace mmfp4::cuda
