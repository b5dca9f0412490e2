#include "kv/kv_cache.h"

#include "core/error.h"

namespace mmfp4 {

int64_t KVCache::bytes_per_token(const ModelConfig& cfg, DType dtype) {
  return cfg.kv_values_per_token_layer() * cfg.num_layers * int64_t(dtype_size(dtype));
}

KVCache::KVCache(Backend& be, const ModelConfig& cfg, int64_t n_blocks, int64_t block_size)
    : be_(be), n_blocks_(n_blocks), block_size_(block_size) {
  if (n_blocks <= 0 || block_size <= 0) fail("KV cache: need at least one block of at least one token");
  const DType dt = be.kv_dtype();
  const int64_t width = cfg.kv_values_per_token_layer();
  const size_t layer_bytes = size_t(n_blocks) * size_t(block_size) * size_t(width) * dtype_size(dt);
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    KVLayerView v;
    v.data = be.alloc(layer_bytes, cat("KV cache layer ", i, " (", n_blocks, " blocks x ", block_size, " tokens x ",
                                       width, " values)"));
    v.dtype = dt;
    v.block_size = block_size;
    v.width = width;
    layers_.push_back(v);
    bytes_ += int64_t(layer_bytes);
  }
  free_.reserve(size_t(n_blocks));
  for (int64_t b = n_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
  refs_.assign(size_t(n_blocks), 0);
}

KVCache::~KVCache() {
  for (auto& l : layers_) be_.release(l.data);
}

int32_t KVCache::alloc_block() {
  if (free_.empty()) return -1;
  int32_t b = free_.back();
  free_.pop_back();
  refs_[size_t(b)] = 1;
  return b;
}

void KVCache::retain(int32_t block) {
  MMFP4_ASSERT(block >= 0 && block < n_blocks_ && refs_[size_t(block)] > 0);
  ++refs_[size_t(block)];
}

void KVCache::release(int32_t block) {
  MMFP4_ASSERT(block >= 0 && block < n_blocks_ && refs_[size_t(block)] > 0);
  if (--refs_[size_t(block)] == 0) free_.push_back(block);
}

void KVCache::copy_block(int32_t src, int32_t dst) {
  for (auto& l : layers_) {
    const size_t row = size_t(block_size_) * size_t(l.width) * dtype_size(l.dtype);
    auto* base = static_cast<uint8_t*>(l.data);
    // Device-to-device through the backend's upload (the CPU backend's is memcpy; devices override via host hop).
    std::vector<uint8_t> tmp(row);
    be_.download(tmp.data(), base + size_t(src) * row, row);
    be_.upload(base + size_t(dst) * row, tmp.data(), row);
  }
}

bool SeqCache::reserve(KVCache& kv, int64_t new_length) {
  const int64_t need = (new_length + kv.block_size() - 1) / kv.block_size();
  const int64_t have = int64_t(blocks.size());
  if (need <= have) return true;
  if (need - have > kv.free_blocks()) return false;
  for (int64_t i = have; i < need; ++i) blocks.push_back(kv.alloc_block());
  return true;
}

void SeqCache::clear(KVCache& kv) {
  for (int32_t b : blocks) kv.release(b);
  blocks.clear();
  length = 0;
}

void SeqCache::truncate(KVCache& kv, int64_t new_length) {
  if (new_length >= length) return;
  const int64_t need = (new_length + kv.block_size() - 1) / kv.block_size();
  while (int64_t(blocks.size()) > need) {
    kv.release(blocks.back());
    blocks.pop_back();
  }
  length = new_length;
}

}  // namespace mmfp4
