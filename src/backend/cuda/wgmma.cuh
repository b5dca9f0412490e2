// Hopper warpgroup MMA (wgmma.mma_async, sm_90a only) with the A operand in registers and B in shared memory: the
// tensor step of the wgmma tiled GEMM (gemm_tiled_wg.cu). Included by .cu files only.
//
// D [64, N] (+)= A [64, 16] B [16, N], bf16 inputs, float32 accumulation, issued by the 4 warps of a warpgroup
// together. Warp w of the warpgroup holds rows 16w .. 16w + 15 of A in the mma.m16n8k16 A layout (4 registers:
// rows g / g + 8, columns 2c, 2c + 1 and + 8) and receives those rows of D in the m16n8 C layout of each n8 block j:
// d[4j + 0/1] = row g, columns 8j + 2c (+1); d[4j + 2/3] = row g + 8, the same columns (g = lane / 4, c = lane % 4).
//
// B in shared memory, K-major without swizzle: "core matrices" of 8 rows (N) x 16 bytes (8 K values), 128 contiguous
// bytes each, element (n, k) of an [N, K] operand at
//   (k / 8) * 8 N + 8 n + k % 8        (16-bit units)
// so the core matrices adjacent in N are 128 bytes apart (the descriptor's stride byte offset) and those adjacent in K
// 16 N bytes (its leading byte offset); the k16 step at column k0 starts 2 k0 N bytes in.
// scripts/device/probe_wgmma.cu checks these layouts on the device against a host product (H100: exact for every N
// here; swapped offsets fault).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

// MMFP4_WGMMA_BUILD: this compilation pass can emit wgmma (nvcc for sm_90a); the kernels that use it are launched only
// where wgmma_available() (cuda_backend.cpp) found the pass that runs on the device to be one of these.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) && !defined(MMFP4_SIM)
#define MMFP4_WGMMA_BUILD 1
#endif

namespace mmfp4::cuda {

// Shared-memory descriptor of a no-swizzle K-major operand starting at `smem` (16-byte aligned).
__device__ __forceinline__ uint64_t wg_desc(const void* smem, uint32_t lbo_bytes, uint32_t sbo_bytes) {
#ifdef MMFP4_WGMMA_BUILD
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  return uint64_t((a & 0x3FFFFu) >> 4) | (uint64_t((lbo_bytes >> 4) & 0x3FFFu) << 16) |
         (uint64_t((sbo_bytes >> 4) & 0x3FFFu) << 32);
#else
  (void)smem, (void)lbo_bytes, (void)sbo_bytes;
  return 0;
#endif
}

// Orders this thread's earlier shared-memory stores before later async-proxy reads (wgmma operands); a barrier after
// it makes all threads' stores visible to the warpgroup's wgmma.
__device__ __forceinline__ void wg_fence_smem() {
#ifdef MMFP4_WGMMA_BUILD
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// Keeps a register's value computed before this point (an empty asm that reads and writes it): A fragments decoded
// ahead of wg_fence() instead of between the wgmma that read them, where ptxas would insert fences of its own and,
// on paths it cannot prove warp-uniform, serialise the wgmma.
__device__ __forceinline__ void wg_pin(uint32_t& r) {
#ifdef MMFP4_WGMMA_BUILD
  asm volatile("" : "+r"(r)::"memory");
#else
  (void)r;
#endif
}
// Before the first wgmma of a batch: earlier register writes (A fragments, accumulators) are seen by it.
__device__ __forceinline__ void wg_fence() {
#ifdef MMFP4_WGMMA_BUILD
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_commit() {
#ifdef MMFP4_WGMMA_BUILD
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Waits until at most N committed batches of this warpgroup are in flight.
template <int N>
__device__ __forceinline__ void wg_wait() {
#ifdef MMFP4_WGMMA_BUILD
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

// d (+)= A B for one k16 step; N = 32, 64 or 128 columns (N / 2 accumulators per thread; the tiled kernel's
// 32/64 tokens with one bf16 activation or hi + lo). acc = false: d = A B.
template <int N>
__device__ __forceinline__ void wg_mma(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc, bool acc);

template <>
__device__ __forceinline__ void wg_mma<32>(float (&d)[16], const uint32_t (&a)[4], uint64_t desc, bool acc) {
#ifdef MMFP4_WGMMA_BUILD
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, "
      "{%16,%17,%18,%19}, %20, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(int(acc))
      : "memory");
#else
  (void)d, (void)a, (void)desc, (void)acc;
#endif
}

template <>
__device__ __forceinline__ void wg_mma<64>(float (&d)[32], const uint32_t (&a)[4], uint64_t desc, bool acc) {
#ifdef MMFP4_WGMMA_BUILD
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
      "}, {%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(int(acc))
      : "memory");
#else
  (void)d, (void)a, (void)desc, (void)acc;
#endif
}

template <>
__device__ __forceinline__ void wg_mma<128>(float (&d)[64], const uint32_t (&a)[4], uint64_t desc, bool acc) {
#ifdef MMFP4_WGMMA_BUILD
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
      "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
      "}, {%64,%65,%66,%67}, %68, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(int(acc))
      : "memory");
#else
  (void)d, (void)a, (void)desc, (void)acc;
#endif
}

}  // namespace mmfp4::cuda
