// The copy engine's 1-D bulk copies (cp.async.bulk, sm_90) from global into shared memory, and the mbarriers they
// complete on: a producer announces a stage's bytes (expect_tx), issues its copies and consumers wait for the phase to
// complete; consumers arrive on a second barrier when they are done with the stage, which the producer waits for
// before it refills the slot. Sources and destinations 16-byte aligned, sizes multiples of 16.
// Simulator (MMFP4_SIM): a barrier's 8 bytes hold its state (pending arrivals, expected count, phase, transaction
// bytes still due); a copy is performed only when a thread waits on its barrier, so that reading a slot before the
// wait shows the old bytes (under the skewed schedule, MMFP4_SIM_SKEW, only once it is due: cuda_sim.h).
#pragma once

#include <cstdint>
#include <cstring>

#ifdef MMFP4_SIM
#include <map>
#include <vector>
#endif

namespace mmfp4::cuda {

#ifdef MMFP4_SIM
namespace simbar {
struct Copy {
  void* dst;
  const void* src;
  uint32_t bytes;
  uint64_t due;  // the scheduling round from which it may land (skewed scheduling; else 0)
};
// bits 0..11 pending arrivals, 12..23 arrivals per phase, 24 phase parity; 32..63 transaction bytes due (signed)
inline std::map<const void*, std::vector<Copy>>& pending_copies() {
  static std::map<const void*, std::vector<Copy>> m;
  return m;
}
inline void complete_if_done(uint64_t* b) {
  const uint32_t lo = uint32_t(*b);
  const int32_t tx = int32_t(uint32_t(*b >> 32));
  if ((lo & 0xFFFu) != 0 || tx != 0) return;
  const uint32_t count = (lo >> 12) & 0xFFFu, phase = (lo >> 24) & 1u;
  *b = uint64_t(count | count << 12 | (phase ^ 1u) << 24);
}
inline void add_tx(uint64_t* b, int32_t d) {
  const int32_t tx = int32_t(uint32_t(*b >> 32)) + d;
  *b = (*b & 0xFFFFFFFFull) | uint64_t(uint32_t(tx)) << 32;
}
}  // namespace simbar
#endif

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
#ifdef MMFP4_SIM
  (void)p;
  return 0;
#else
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
#endif
}

// One thread initialises; then mbar_init_fence and a block barrier before any use.
__device__ __forceinline__ void mbar_init(uint64_t* b, int arrivals) {
#ifdef MMFP4_SIM
  *b = uint64_t(uint32_t(arrivals) | uint32_t(arrivals) << 12);
#else
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(b)), "r"(arrivals));
#endif
}
__device__ __forceinline__ void mbar_init_fence() {
#ifndef MMFP4_SIM
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
// The current phase also waits for `bytes` more of transactions (no arrival).
__device__ __forceinline__ void mbar_expect_tx(uint64_t* b, uint32_t bytes) {
#ifdef MMFP4_SIM
  simbar::add_tx(b, int32_t(bytes));
#else
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(b)), "r"(bytes) : "memory");
#endif
}
// An arrival that also expects `bytes` of transactions.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* b, uint32_t bytes) {
#ifdef MMFP4_SIM
  simbar::add_tx(b, int32_t(bytes));
  *b -= 1;
  simbar::complete_if_done(b);
#else
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(b)), "r"(bytes) : "memory");
#endif
}
__device__ __forceinline__ void mbar_arrive(uint64_t* b) {
#ifdef MMFP4_SIM
  *b -= 1;
  simbar::complete_if_done(b);
#else
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(b)) : "memory");
#endif
}
// Returns once the phase of parity `parity` has completed (the first phase has parity 0).
__device__ __forceinline__ void mbar_wait(uint64_t* b, uint32_t parity) {
#ifdef MMFP4_SIM
  // Skewed scheduling (cuda_sim.h): the phase is read before this wait lands anything, and only the copies that are
  // due land, as the hardware's land on their own time.
  const bool skew = ::mmfp4::sim::skew_seed() != 0;
  for (;;) {
    if (skew && ((uint32_t(*b) >> 24) & 1u) != parity) return;
    auto& pc = simbar::pending_copies();
    auto it = pc.find(b);
    if (it != pc.end()) {
      std::vector<simbar::Copy> later;
      for (const auto& c : it->second) {
        if (c.due > ::mmfp4::sim::sched_round()) {
          later.push_back(c);
          continue;
        }
        std::memcpy(c.dst, c.src, c.bytes);
        simbar::add_tx(b, -int32_t(c.bytes));
      }
      if (later.empty()) pc.erase(it);
      else it->second = std::move(later);
      simbar::complete_if_done(b);
    }
    if (((uint32_t(*b) >> 24) & 1u) != parity) return;
    ::mmfp4::sim::spin_yield();
  }
#else
  asm volatile(
      "{\n"
      " .reg .pred done;\n"
      " WAIT:\n"
      " mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      " @!done bra WAIT;\n"
      "}\n" ::"r"(smem_addr(b)),
      "r"(parity)
      : "memory");
#endif
}
// bytes from global src to shared dst; completes `bytes` of transactions on b.
__device__ __forceinline__ void bulk_copy_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* b) {
#ifdef MMFP4_SIM
  // Skewed scheduling: the copies of one barrier phase land together, after 0..63 rounds, or one time in four after
  // up to 2,047 (a stage that lands long after later ones).
  auto& pending = simbar::pending_copies()[b];
  uint64_t due = 0;
  if (::mmfp4::sim::skew_seed()) {
    const uint32_t r = ::mmfp4::sim::skew_rand();
    due = !pending.empty() ? pending.front().due
                           : ::mmfp4::sim::sched_round() + (r % 4 == 0 ? r / 4 % 2048 : r / 4 % 64);
  }
  pending.push_back({dst, src, bytes, due});
#else
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   smem_addr(dst)),
               "l"(src), "r"(bytes), "r"(smem_addr(b))
               : "memory");
#endif
}

}  // namespace mmfp4::cuda
