// CPU simulator of the CUDA kernels (docs/cuda.md, "Testing without a GPU"). Force-included (-include) when the .cu
// files of src/backend/cuda are compiled as plain C++ for a build with -DMMFP4_CUDA_SIM=ON: the CUDA headers give
// the types (dim3, uint4, __nv_bfloat162 with their host arithmetic), and this header the rest of the device
// language: threadIdx & co., __shared__ (block-shared static storage: blocks run one after another), barriers, warp
// shuffles and the mma.sync the kernels use (common.cuh routes its inline PTX here). Every CUDA thread is a fiber;
// a warp collective waits until every lane of its mask has arrived (a lane that exited, or a lane at another
// collective, is reported as an error), a barrier until every live thread of the block has. Kernels run to
// completion at launch (or are recorded into a graph during capture); the fake runtime (sim_runtime.cpp) keeps
// device memory in host memory.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#define MMFP4_SIM 1
#undef __shared__
#define __shared__ static
#define __launch_bounds__(...)

namespace mmfp4::sim {

uint3& thread_idx();
uint3& block_idx();
dim3& block_dim();
dim3& grid_dim();
void* dyn_smem_ptr();
template <typename T>
T* dyn_smem() {
  return static_cast<T*>(dyn_smem_ptr());
}
void syncthreads();
void syncwarp(unsigned mask);
// A thread polling shared memory (an mbarrier wait): lets the block's other threads run first. A thread that polls
// without end is reported as a deadlock.
void spin_yield();
uint32_t shfl(unsigned mask, uint32_t v, int src_lane);
int lane_id();
// Skewed scheduling (MMFP4_SIM_SKEW=seed, a positive integer; docs/cuda.md): each round a running warp may be held
// back for a random 1..64 rounds, so that warps of a block drift far apart; the bulk copies of a barrier phase land
// a random 0..63 rounds after the first was issued, one time in four up to 2,047 (so stages land out of order), and
// an mbarrier wait reads the phase as it is before it lands any copy that is due (bulk_copy.cuh): the orders in
// which warp-order races show. skew_seed() is 0 when it is off; skew_rand() draws from the seeded sequence;
// sched_round() counts the scheduling rounds of all blocks so far.
uint32_t skew_seed();
uint32_t skew_rand();
uint64_t sched_round();
// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: d = a b + d with the PTX fragment layouts.
void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, bool f16);

// ldmatrix.sync.aligned.m8n8.x4[.trans].b16 from the row addresses of the 32 lanes.
void ldmatrix_x4(uint32_t (&r)[4], const void* row, bool trans);
// cp.async: a copy is only performed when a wait_group lets its group complete (so a missing wait reads stale data).
void cp_async16(void* smem, const void* gmem);
void cp_async_commit();
void cp_async_wait(int n);

// Runs (or records, during a stream capture) a kernel body on every thread of every block.
void launch(dim3 grid, dim3 block, size_t smem, std::function<void()> body);

template <typename... P>
struct Launcher {
  dim3 g, b;
  size_t sm;
  void (*k)(P...);
  Launcher(dim3 g_, dim3 b_, size_t sm_, cudaStream_t, void (*k_)(P...)) : g(g_), b(b_), sm(sm_), k(k_) {}
  template <typename... A>
  void operator()(A&&... a) const {
    auto args = std::make_tuple(std::decay_t<P>(std::forward<A>(a))...);
    auto k_ = k;
    launch(g, b, sm, [k_, args]() { std::apply(k_, args); });
  }
};

}  // namespace mmfp4::sim

#define threadIdx (::mmfp4::sim::thread_idx())
#define blockIdx (::mmfp4::sim::block_idx())
#define blockDim (::mmfp4::sim::block_dim())
#define gridDim (::mmfp4::sim::grid_dim())

inline void __syncthreads() { ::mmfp4::sim::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::mmfp4::sim::syncwarp(mask); }
inline void __threadfence() {}

template <typename T>
inline T sim_shfl_(unsigned mask, T v, int src) {
  static_assert(sizeof(T) == 4, "32-bit shuffles only");
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = ::mmfp4::sim::shfl(mask, u, src);
  std::memcpy(&v, &u, 4);
  return v;
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32) {
  const int lane = ::mmfp4::sim::lane_id();
  const int src = lane ^ m;
  return sim_shfl_(mask, v, (src / width == lane / width) ? src : lane);
}
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const int lane = ::mmfp4::sim::lane_id();
  return sim_shfl_(mask, v, (lane / width) * width + (src % width));
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
  const int lane = ::mmfp4::sim::lane_id();
  const int src = lane + int(d);
  return sim_shfl_(mask, v, (src / width == lane / width) ? src : lane);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
  const int lane = ::mmfp4::sim::lane_id();
  const int src = lane - int(d);
  return sim_shfl_(mask, v, (src >= 0 && src / width == lane / width) ? src : lane);
}
// The warp's predicates as a bit mask: a butterfly of shuffles (the simulator has no vote unit).
inline unsigned __ballot_sync(unsigned mask, int pred) {
  unsigned v = pred ? 1u << ::mmfp4::sim::lane_id() : 0u;
  for (int o = 16; o > 0; o >>= 1) v |= __shfl_xor_sync(mask, v, o);
  return v;
}
inline int __popc(unsigned v) { return __builtin_popcount(v); }
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
template <typename T>
inline T __ldcg(const T* p) {
  return *p;
}
template <typename T>
inline T atomicAdd(T* p, T v) {  // int, unsigned, float: blocks run one at a time
  const T o = *p;
  *p = o + v;
  return o;
}
inline int atomicMax(int* p, int v) {
  const int o = *p;
  *p = o < v ? v : o;
  return o;
}
inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t __float_as_uint(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __int_as_float(int u) { return __uint_as_float(uint32_t(u)); }
inline int __float_as_int(float f) { return int(__float_as_uint(f)); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) {
  return a < b ? a : b;
}
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) {
  return a < b ? b : a;
}
// nvcc's cuda_runtime.h has this overload for kernels; the host-only header does not.
template <typename... P>
inline cudaError_t cudaFuncSetAttribute(void (*f)(P...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(f), attr, value);
}
