// The paged KV cache: a pool of fixed-size blocks of `block_size` token slots, per layer one device array
// [n_blocks, block_size, width] (width from the layer kind: GQA K and V, or MLA latent + rope key; see
// backend/backend.h KVLayerView). Sequences own lists of blocks (their block table); blocks are reference-counted
// so identical prompt prefixes can share blocks (copy-on-write is the scheduler's job).
// Memory is taken once, at construction: running out of blocks is a scheduling event, never a crash.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"

namespace mmfp4 {

class KVCache {
 public:
  // Takes n_blocks * block_size * width * bytes for every layer from the backend.
  KVCache(Backend& be, const ModelConfig& cfg, int64_t n_blocks, int64_t block_size = 16);
  ~KVCache();
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;

  // Bytes per token over all layers (what `inspect` reports), and for a whole cache of n tokens.
  static int64_t bytes_per_token(const ModelConfig& cfg, DType dtype);

  KVLayerView layer(int64_t i) const { return layers_[size_t(i)]; }
  int64_t n_layers() const { return int64_t(layers_.size()); }
  int64_t block_size() const { return block_size_; }
  int64_t n_blocks() const { return n_blocks_; }
  int64_t free_blocks() const { return int64_t(free_.size()); }
  int64_t used_blocks() const { return n_blocks_ - free_blocks(); }
  int64_t total_bytes() const { return bytes_; }

  // Block allocation. alloc returns -1 when the pool is empty.
  int32_t alloc_block();
  void retain(int32_t block);   // one more owner (prefix sharing)
  void release(int32_t block);  // drop an owner; the block is free when none remain
  int32_t refcount(int32_t block) const { return refs_[size_t(block)]; }
  // Copies every layer's contents of block `src` into `dst` (copy-on-write of a shared block).
  void copy_block(int32_t src, int32_t dst);

 private:
  Backend& be_;
  int64_t n_blocks_, block_size_;
  int64_t bytes_ = 0;
  std::vector<KVLayerView> layers_;
  std::vector<int32_t> free_;   // stack of free block ids
  std::vector<int32_t> refs_;   // [n_blocks]
};

// A sequence's view of the cache: its blocks and how many tokens they hold.
struct SeqCache {
  std::vector<int32_t> blocks;
  int64_t length = 0;  // tokens written

  // Makes room for `new_length` tokens; returns false (changing nothing) if the pool lacks blocks.
  bool reserve(KVCache& kv, int64_t new_length);
  // Releases every block.
  void clear(KVCache& kv);
  // Drops tokens past `new_length` (releasing blocks no longer needed).
  void truncate(KVCache& kv, int64_t new_length);
};

}  // namespace mmfp4
