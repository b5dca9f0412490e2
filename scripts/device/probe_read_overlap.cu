// Probe (device measurement, not part of the build): how fast can back-to-back launches stream a weight of a given
// size when each launch requests its bytes *before* waiting for the previous launch (griddepcontrol.wait), so that
// its blocks stream while the previous launch drains? Weights never change during a step, so only the activations
// must wait. Every variant reads a different region each launch (cold in L2), launched with PDL on a created stream
// as the engine's linears are. Printed: microseconds per launch and TB/s of the bytes read.
//   ld-wait-first   16-byte loads past L1, grid SMs x 4 x 512 threads, wait then loads (bench_cuda_linear's ceiling)
//   ld-early        the same, the loads before the wait (the wait at the end, the dependents released at the start)
//   bulk-share      one block per SM copies its contiguous share of the bytes into shared memory with cp.async.bulk
//                   (8 KB pieces, one mbarrier), requested before the wait; shares above SMEM bytes go round a ring of
//                   slots (the block refills a slot once it landed)
//   bulk-late       bulk-share with the copies requested after the wait
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Isrc -o /tmp/probe_ro scripts/device/probe_read_overlap.cu
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "probe_util.cuh"
#include "backend/cuda/bulk_copy.cuh"
#include "backend/cuda/common.cuh"

using namespace mmfp4::cuda;

__device__ __forceinline__ void dep_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void dep_release() { asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory"); }

__global__ void ld_read(const uint4* p, int64_t n, uint4* sink, bool early) {
  if (early) dep_release();
  else {
    dep_wait();
    dep_release();
  }
  uint4 a = make_uint4(0, 0, 0, 0);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 v = ld_stream(p + i);
    a.x ^= v.x, a.y ^= v.y, a.z ^= v.z, a.w ^= v.w;
  }
  if (early) dep_wait();
  if ((a.x ^ a.y ^ a.z ^ a.w) == 0x9e3779b9u) sink[blockIdx.x] = a;
}

constexpr int kPiece = 8192;

// Block b copies bytes [b share, (b + 1) share) (multiples of kPiece) into `slots` slots of `slot` bytes.
__global__ void __launch_bounds__(32, 1) bulk_read(const unsigned char* p, int64_t share, int slot, int slots,
                                                   uint4* sink, bool early) {
  extern __shared__ __align__(128) unsigned char sm[];
  uint64_t* full = reinterpret_cast<uint64_t*>(sm + int64_t(slot) * slots);
  const int lane = threadIdx.x;
  if (lane == 0) {
    for (int s = 0; s < slots; ++s) mbar_init(&full[s], 1);
    mbar_init_fence();
  }
  __syncwarp();
  dep_release();
  if (!early) dep_wait();
  const unsigned char* src = p + int64_t(blockIdx.x) * share;
  const int64_t nslot = (share + slot - 1) / slot;
  auto issue = [&](int64_t q) {
    const int s = int(q % slots);
    const int64_t off = q * slot, bytes = min(int64_t(slot), share - off);
    if (lane == 0) mbar_arrive_expect_tx(&full[s], uint32_t(bytes));
    __syncwarp();
    for (int64_t o = int64_t(lane) * kPiece; o < bytes; o += 32 * kPiece)
      bulk_copy_g2s(sm + int64_t(s) * slot + o, src + off + o, uint32_t(min(int64_t(kPiece), bytes - o)), &full[s]);
  };
  for (int64_t q = 0; q < min(int64_t(slots), nslot); ++q) issue(q);
  uint32_t acc = 0;
  for (int64_t q = 0; q < nslot; ++q) {
    mbar_wait(&full[q % slots], uint32_t((q / slots) & 1));
    acc ^= reinterpret_cast<const uint32_t*>(sm + (q % slots) * slot)[lane];
    __syncwarp();
    if (q + slots < nslot) issue(q + slots);
  }
  if (early) dep_wait();
  if (acc == 0x9e3779b9u) sink[blockIdx.x].x = acc;
}

int main() {
  CHECK(cudaSetDevice(0));
  cudaDeviceProp pr;
  CHECK(cudaGetDeviceProperties(&pr, 0));
  const int sms = pr.multiProcessorCount;
  std::printf("device %s, %d SMs, L2 %d MB\n", pr.name, sms, pr.l2CacheSize >> 20);
  cudaStream_t st;
  CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  const int64_t region = int64_t(128) << 20, regions = 16;
  unsigned char* buf;
  uint4* sink;
  CHECK(cudaMalloc(&buf, size_t(region * regions)));
  CHECK(cudaMalloc(&sink, size_t(sms) * 64 * 16));
  CHECK(cudaMemset(buf, 1, size_t(region * regions)));
  const int max_smem = 200 << 10;
  CHECK(cudaFuncSetAttribute(bulk_read, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem + 1024));
  auto timed = [&](auto launch) {
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    for (int i = 0; i < 5; ++i) launch(i);
    const int iters = 200;
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      CHECK(cudaEventRecord(e0, st));
      for (int i = 0; i < iters; ++i) launch(i);
      CHECK(cudaEventRecord(e1, st));
      CHECK(cudaEventSynchronize(e1));
      float ms = 0;
      CHECK(cudaEventElapsedTime(&ms, e0, e1));
      best = std::min(best, 1000.0 * ms / iters);
    }
    CHECK(cudaGetLastError());
    return best;
  };
  auto cfg_of = [&](dim3 grid, dim3 block, size_t smem) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    static cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    return cfg;
  };
  // The MMFP4 bytes (codes + fp16 scales) of GLM's dense MLP, o_proj-class and 28672x8192.
  const struct {
    const char* name;
    int64_t bytes;
  } sizes[] = {{"glm.dense_gate_up 20480x2048", int64_t(20480) * 2048 / 2 + int64_t(20480) * 16 * 2},
               {"glm.q_b-class 5120x2048", int64_t(5120) * 2048 / 2 + int64_t(5120) * 16 * 2},
               {"28672x8192", int64_t(28672) * 8192 / 2 + int64_t(28672) * 64 * 2}};
  for (int round = 0; round < 2; ++round)
    for (const auto& sz : sizes) {
      const int64_t bytes = sz.bytes;
      for (int early = 0; early < 2; ++early) {
        const double us = timed([&](int i) {
          auto cfg = cfg_of(dim3(unsigned(sms * 4)), dim3(512), 0);
          CHECK(cudaLaunchKernelEx(&cfg, ld_read, reinterpret_cast<const uint4*>(buf + (i % regions) * region),
                                   bytes / 16, sink, early != 0));
        });
        std::printf("%-30s %7.1f MB  %-26s %7.2f us  %.3f TB/s\n", sz.name, bytes / 1e6,
                    early ? "ld-early" : "ld-wait-first", us, bytes / us * 1e-6);
      }
      // Shares in whole pieces; bytes past sms * share are not read (printed TB/s counts what was read).
      const int64_t share = (bytes / sms) / kPiece * kPiece;
      for (int slot_kb : {0, 32, 64}) {
        const int slot = slot_kb ? slot_kb << 10 : int(std::min<int64_t>(share, max_smem));
        const int slots = slot_kb ? int(std::min<int64_t>((max_smem / slot), (share + slot - 1) / slot))
                                  : int((share + slot - 1) / slot);
        if (int64_t(slot) * slots > max_smem) continue;
        for (int early = 0; early < 2; ++early) {
          const double us = timed([&](int i) {
            auto cfg = cfg_of(dim3(unsigned(sms)), dim3(32), size_t(slot) * slots + 64 * 8);
            CHECK(cudaLaunchKernelEx(&cfg, bulk_read, static_cast<const unsigned char*>(buf + (i % regions) * region),
                                     share, slot, slots, sink, early != 0));
          });
          char what[64];
          std::snprintf(what, sizeof what, "%s %dx%dKB", early ? "bulk-share" : "bulk-late", slots, slot >> 10);
          std::printf("%-30s %7.1f MB  %-26s %7.2f us  %.3f TB/s\n", sz.name, share * sms / 1e6, what, us,
                      share * sms / us * 1e-6);
        }
      }
    }
  return 0;
}
