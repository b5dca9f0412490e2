// The CPU backend: float32 activations, weights copied at load into 64-byte aligned memory that this backend owns
// (so no page of a weight is first touched during a request), multithreaded on the global ThreadPool.
// This file declares the backend; the ops live in cpu_*.cpp files named for what they compute.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace mmfp4 {

// A linear weight in CPU memory, canonical layout (docs/format.md): dense rows, or MMFP4 codes [n, k_stored / 8]
// + f16 scales [n, k_stored / group]. Kernels that want another layout repack into `packed` at upload.
struct CpuLinear : LinearWeight {
  std::shared_ptr<uint8_t> mem;       // owns everything below
  DType dtype = DType::F32;           // dense element type
  const void* data = nullptr;         // dense [n, k]
  const uint32_t* codes = nullptr;    // MMFP4 [n, k_stored / 8]
  const uint16_t* scales = nullptr;   // MMFP4 [n, k_stored / group_size]
  int64_t k_stored = 0;
  int group_size = 0;

  // Row `row` of the stored matrix as float32 (out[k_stored]); rotated weights stay in the rotated domain.
  void stored_row(int64_t row, float* out) const;
};

struct CpuExperts : ExpertWeights {
  std::vector<std::unique_ptr<CpuLinear>> gate, up, down;  // [E] each
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads = 0);
  ~CpuBackend() override;

  std::string name() const override;
  bool is_cpu() const override { return true; }
  void* alloc(size_t bytes, const std::string& what) override;
  void release(void* p) override;
  void upload(void* dst, const void* src, size_t bytes) override;
  void download(void* dst, const void* src, size_t bytes) override;
  size_t free_memory() const override;
  DType kv_dtype() const override { return DType::F32; }

  std::unique_ptr<LinearWeight> upload_linear(const HostWeight& w) override;
  std::unique_ptr<ExpertWeights> upload_experts(const std::vector<HostWeight>& gate, const std::vector<HostWeight>& up,
                                                const std::vector<HostWeight>& down) override;

  void embed(const LinearWeight& table, const BatchMeta& b, Act out) override;
  void rmsnorm(Act x, const DeviceVector& w, float eps, Act out) override;
  void linear(Act x, const LinearWeight& w, Act out, bool accumulate, bool input_rotated) override;
  void hadamard(Act x, int block) override;
  void rope(Act x, int64_t heads, int64_t head_stride, int64_t off, const RopeTable& table,
            const BatchMeta& b) override;
  void silu_mul(Act gate, Act up, Act out) override;
  void add(Act x, Act y) override;
  void add_bias(Act x, const DeviceVector& bias) override;
  void gather_rows(Act x, const int32_t* rows, int64_t n, Act out) override;
  void kv_store(const KVLayerView& kv, Act k, Act v, const BatchMeta& b) override;
  void attention(Act q, const KVLayerView& kv, int64_t heads, int64_t kv_heads, int64_t head_dim, float scale,
                 const BatchMeta& b, Act out) override;
  void mla_store(const KVLayerView& kv, Act latent, Act kpe, const BatchMeta& b) override;
  void mla_attention(Act q_lat, Act q_pe, const KVLayerView& kv, int64_t heads, float scale, const BatchMeta& b,
                     Act out_lat) override;
  void mla_absorb_q(Act q_nope, const LinearWeight& kv_b, int64_t heads, int64_t nope, int64_t v,
                    Act q_lat) override;
  void mla_expand_v(Act o_lat, const LinearWeight& kv_b, int64_t heads, int64_t nope, int64_t v, Act out) override;
  void moe_route(Act logits, const DeviceVector* bias, const RouterParams& p, int32_t* ids, float* weights) override;
  void moe_experts(Act x, const int32_t* ids, const float* weights, int64_t top_k, const ExpertWeights& ew,
                   Act out) override;
  void sync() override {}

  ThreadPool& pool() const { return *pool_; }
  // Per-thread scratch of at least n floats (grows on first use of a size; the model reserves the sizes it needs
  // at load, so requests do not allocate).
  float* scratch(int thread, size_t n);
  void reserve_scratch(size_t n);

 private:
  std::unique_ptr<CpuLinear> make_linear(const HostWeight& w);
  void linear_rows(Act x, const CpuLinear& w, Act out, bool accumulate, bool input_rotated);

  ThreadPool* pool_;
  std::vector<std::vector<float>> scratch_;  // [threads]
  std::vector<float> rotated_;               // rotated copy of a linear's input
  size_t allocated_ = 0;
};

// Dot product of n floats, float32 accumulation in a fixed order (independent of the caller's batch size).
float dot_f32(const float* a, const float* b, int64_t n);

}  // namespace mmfp4
