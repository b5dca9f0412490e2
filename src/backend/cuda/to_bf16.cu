// The 16-bit operands of the cuBLAS prefill path (cuda_backend_blas.cpp), written row-major:
//   * MMFP4 weight tiles -> bf16 rows with the group scale folded in (each weight rounded once, 2^-9 relative);
//   * float32 activations (strided rows) -> bf16 (or saturated f16 for F16 weights), zero-padded columns;
//   * a sequence's rows of the paged KV cache (float32 or bf16) -> contiguous bf16 rows.
#include "backend/cuda/common.cuh"

namespace mmfp4::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ uint32_t word_of(const uint4& v, int j) {
  return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

// One warp per (tile, 64-column chunk): lane 4g + c holds rows g, g + 8 and, in word j = 2b + s, columns
// 32b + 8c + 4s + 2pr + {0, 1} of pair i = 2pr + hi (repack.h). The warp assembles its 16 x 64 bf16 block in shared
// memory, then writes it as whole 128-byte row segments (16-byte stores): scattered 4-byte stores were half the
// bandwidth.
constexpr int kRowPad = 72;  // bf16 per staged row: 64 + 8, so the 16-byte reads of a row group hit distinct banks
template <int LAYOUT>
__global__ void dequant_bf16_kernel(GemmWeight w, int tile0, int tiles, uint16_t* out, int64_t ld) {
  pdl_enter();
  __shared__ __align__(16) uint16_t blk[kThreads / kWarp][16 * kRowPad];
  const int64_t item = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  if (item >= int64_t(tiles) * w.k_chunks) return;  // whole warps
  const int lane = threadIdx.x % kWarp, g = lane >> 2, c = lane & 3;
  uint16_t* sb = blk[threadIdx.x / kWarp];
  const int t = int(item / w.k_chunks), kc = int(item % w.k_chunks);
  const int64_t tile = int64_t(tile0) + t;
  const uint4 v = ld_stream(static_cast<const uint4*>(w.data) + (tile * w.k_chunks + kc) * kWarp + lane);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int b = j >> 1, s = j & 1;
    const int col = 64 * kc + 32 * b + 8 * c + 4 * s;
    const uint32_t sw = __ldg(w.scales + (tile * w.groups + col / w.group_size) * 8 + g);
    const float sc[2] = {f16_bits_to_f32(uint16_t(sw & 0xFFFF)), f16_bits_to_f32(uint16_t(sw >> 16))};
    uint32_t a[4];
    fp4_frag<LAYOUT>(word_of(v, j), a);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int hi = i & 1, pr = i >> 1;
      const float v0 = bf16_bits_to_f32(uint16_t(a[i] & 0xFFFF)) * sc[hi];
      const float v1 = bf16_bits_to_f32(uint16_t(a[i] >> 16)) * sc[hi];
      *reinterpret_cast<uint32_t*>(sb + (g + 8 * hi) * kRowPad + (col - 64 * kc) + 2 * pr) = pack_bf16x2(v0, v1);
    }
  }
  __syncwarp();
  // 16 rows x 128 bytes = 128 16-byte pieces: lane l writes pieces l, l + 32, l + 64, l + 96 (row p / 8, part p % 8).
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int piece = lane + kWarp * q, r = piece / 8, part = piece % 8;
    *reinterpret_cast<uint4*>(out + (int64_t(t) * 16 + r) * ld + 64 * kc + 8 * part) =
        *reinterpret_cast<const uint4*>(sb + r * kRowPad + 8 * part);
  }
}

// Eight columns per thread (two 16-byte loads, one 16-byte store) when rows, strides and widths allow it.
__global__ void to_16bit_vec_kernel(const float* x, int64_t xs, int rows, int cols, int cols_pad, bool f16,
                                    uint16_t* out, int64_t ld, int col0) {
  pdl_enter();
  const int octs = cols_pad / 8;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(rows) * octs) return;
  const int64_t r = i / octs;
  const int c = int(i % octs) * 8;
  float v[8];
  if (c + 8 <= cols) {
    const float4 a = *reinterpret_cast<const float4*>(x + r * xs + c);
    const float4 b = *reinterpret_cast<const float4*>(x + r * xs + c + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = c + e < cols ? x[r * xs + c + e] : 0.0f;
  }
  uint32_t p[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) p[e] = f16 ? pack_f16x2_sat(v[2 * e], v[2 * e + 1]) : pack_bf16x2(v[2 * e], v[2 * e + 1]);
  *reinterpret_cast<uint4*>(out + r * ld + col0 + c) = make_uint4(p[0], p[1], p[2], p[3]);
}

// Two columns per thread: out[r, col0 + c] for c < cols_pad (zero past cols).
__global__ void to_16bit_kernel(const float* x, int64_t xs, int rows, int cols, int cols_pad, bool f16, uint16_t* out,
                                int64_t ld, int col0) {
  pdl_enter();
  const int pairs = (cols_pad + 1) / 2;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(rows) * pairs) return;
  const int64_t r = i / pairs;
  const int c = int(i % pairs) * 2;
  const float* xr = x + r * xs;
  const float v0 = c < cols ? xr[c] : 0.0f, v1 = c + 1 < cols ? xr[c + 1] : 0.0f;
  const uint32_t p = f16 ? pack_f16x2_sat(v0, v1) : pack_bf16x2(v0, v1);
  uint16_t* o = out + r * ld + col0 + c;
  o[0] = uint16_t(p & 0xFFFF);
  if (c + 1 < cols_pad) o[1] = uint16_t(p >> 16);
}

__global__ void gather_cache_kernel(const void* cache, bool cache_bf16, int64_t bs, int64_t width, const int32_t* bt,
                                    int n, uint16_t* out, int64_t ld) {
  pdl_enter();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(n) * width) return;
  const int64_t j = i / width, col = i % width;
  const int64_t slot = int64_t(bt[j / bs]) * bs + j % bs;
  uint16_t v;
  if (cache_bf16) v = static_cast<const uint16_t*>(cache)[slot * width + col];
  else v = uint16_t(pack_bf16x2(static_cast<const float*>(cache)[slot * width + col], 0.0f) & 0xFFFF);
  out[j * ld + col] = v;
}

inline unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

}  // namespace

void launch_dequant_bf16(const GemmWeight& w, int tile0, int tiles, uint16_t* out, int64_t ld, cudaStream_t s) {
  if (w.kind != WKind::Fp4 || w.group_size % 32 != 0 || ld < int64_t(w.k_chunks) * 64 || ld % 8 != 0 ||
      reinterpret_cast<uintptr_t>(out) % 16 != 0)
    fail("dequant_bf16: MMFP4 weight with group % 32 == 0, ld a multiple of 8 >= 64 k_chunks (ld ", ld,
         ") and 16-byte aligned rows");
  if (tiles <= 0) return;
  const int64_t threads = int64_t(tiles) * w.k_chunks * kWarp;
  if (w.layout == 2)
    MMFP4_LAUNCH(dim3(blocks_for(threads)), dim3(kThreads), 0, s, dequant_bf16_kernel<2>)(w, tile0, tiles, out, ld);
  else
    MMFP4_LAUNCH(dim3(blocks_for(threads)), dim3(kThreads), 0, s, dequant_bf16_kernel<1>)(w, tile0, tiles, out, ld);
  MMFP4_CUDA_LAUNCHED("dequant_bf16 [", w.n, ", ", w.k, "] tiles ", tile0, " + ", tiles);
}

void launch_to_16bit(const float* x, int64_t x_stride, int rows, int cols, int cols_pad, bool f16, uint16_t* out,
                     int64_t ld, int col0, cudaStream_t s) {
  if (rows <= 0 || cols_pad <= 0) return;
  const bool vec = cols_pad % 8 == 0 && col0 % 8 == 0 && ld % 8 == 0 && x_stride % 4 == 0 &&
                   reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
  if (vec) {
    const int64_t n = int64_t(rows) * (cols_pad / 8);
    MMFP4_LAUNCH(dim3(blocks_for(n)), dim3(kThreads), 0, s, to_16bit_vec_kernel)(x, x_stride, rows, cols, cols_pad, f16,
                                                                                 out, ld, col0);
    MMFP4_CUDA_LAUNCHED("to_16bit [", rows, ", ", cols, "] -> ld ", ld, " (vector)");
    return;
  }
  const int64_t n = int64_t(rows) * ((cols_pad + 1) / 2);
  MMFP4_LAUNCH(dim3(blocks_for(n)), dim3(kThreads), 0, s, to_16bit_kernel)(x, x_stride, rows, cols, cols_pad, f16, out,
                                                                             ld, col0);
  MMFP4_CUDA_LAUNCHED("to_16bit [", rows, ", ", cols, "] -> ld ", ld);
}

void launch_gather_cache_bf16(const void* cache, bool cache_bf16, int64_t block_size, int64_t width,
                              const int32_t* block_table, int n, uint16_t* out, int64_t ld, cudaStream_t s) {
  if (n <= 0) return;
  MMFP4_LAUNCH(dim3(blocks_for(int64_t(n) * width)), dim3(kThreads), 0, s, gather_cache_kernel)(
      cache, cache_bf16, block_size, width, block_table, n, out, ld);
  MMFP4_CUDA_LAUNCHED("gather_cache_bf16 ", n, " rows of ", width);
}

}  // namespace mmfp4::cuda
