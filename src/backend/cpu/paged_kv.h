// Addressing the paged KV cache from the host mirrors of the batch metadata (backend/backend.h KVLayerView,
// BatchMeta): shared by the reference and the fast attention.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "core/error.h"

namespace mmfp4 {

// The cache row of position `pos` of sequence `s`.
inline const float* cache_row(const KVLayerView& kv, const BatchMeta& b, int32_t s, int64_t pos) {
  const int32_t block = b.h_block_tables[int64_t(s) * b.max_blocks + pos / kv.block_size];
  MMFP4_ASSERT(block >= 0);  // the scheduler allocates blocks before a batch runs
  return static_cast<const float*>(kv.data) + (int64_t(block) * kv.block_size + pos % kv.block_size) * kv.width;
}

// The row a token writes (its slot: block * block_size + offset).
inline float* slot_row(const KVLayerView& kv, int32_t slot) {
  return static_cast<float*>(kv.data) + int64_t(slot) * kv.width;
}

}  // namespace mmfp4
