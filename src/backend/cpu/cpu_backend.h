// The CPU backend: float32 activations, weights copied at load into 64-byte aligned memory that this backend owns
// (so no page of a weight is first touched during a request), multithreaded on the global ThreadPool.
//
// Two implementations of every op live side by side:
//   fast (default)   weights repacked at load into the P64 layout (packed_weight.h) and run by the SIMD kernels of
//                    the ISA chosen at run time (cpu_isa.h: AVX-512 when the CPU has it, else AVX2); decode steps
//                    allocate nothing (scratch is sized by reserve_workspace, or grows once on a larger call)
//   reference        (MMFP4_CPU_REF=1 or CpuOptions::reference): weights kept in the canonical layout, one row
//                    dequantized at a time and plain loops (ref_*.cpp); slow, simple, and what the fast path is
//                    tested against
// Files: cpu_backend.cpp (memory, uploads, dispatch), cpu_linear.cpp, cpu_attention.cpp, cpu_moe.cpp,
// cpu_elementwise.cpp (fast ops), ref_*.cpp (reference ops), gemm_*.cpp (kernels), cpu_gemm.cpp (GEMM driver).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_gemm.h"
#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/packed_weight.h"
#include "core/thread_pool.h"

namespace mmfp4 {

struct CpuOptions {
  int threads = 0;              // 0: MMFP4_THREADS or all cores
  int reference = -1;           // 1: reference ops, 0: fast ops, -1: MMFP4_CPU_REF
  const char* isa = nullptr;    // "avx2" / "avx512"; null: MMFP4_CPU_ISA or the best the CPU has
};

// A linear weight in CPU memory. Fast backend: `packed` (P64 layout). Reference backend: canonical layout
// (docs/format.md): dense rows, or MMFP4 codes [n, k_stored / 8] + f16 scales [n, k_stored / group].
struct CpuLinear : LinearWeight {
  std::shared_ptr<uint8_t> mem;       // owns everything below
  bool reference = false;
  PackedWeight packed;                // fast backend
  DType dtype = DType::F32;           // dense element type
  const void* data = nullptr;         // reference, dense [n, k]
  const uint32_t* codes = nullptr;    // reference, MMFP4 [n, k_stored / 8]
  const uint16_t* scales = nullptr;   // reference, MMFP4 [n, k_stored / group_size]
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
  explicit CpuBackend(const CpuOptions& opt);
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
  void reserve_workspace(const WorkspacePlan& plan) override;

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
  void argmax_rows(Act x, int32_t* ids) override;

  ThreadPool& pool() const { return *pool_; }
  bool reference() const { return ref_; }
  CpuIsa isa() const { return kr_->isa; }
  const CpuKernels& kernels() const { return *kr_; }
  GemmTuning& tuning() { return tune_; }
  // Per-thread scratch of at least n floats (grows on first use of a size; reserve_workspace sizes it at load).
  float* scratch(int thread, size_t n) { return scratch_[size_t(thread)].get(n); }
  void reserve_scratch(size_t n);
  // Reallocations of any scratch buffer of any CPU backend so far (a warmed-up decode step adds none).
  static int64_t scratch_growths() { return ScratchBuffer::growths(); }

 private:
  std::unique_ptr<CpuLinear> make_linear(const HostWeight& w);
  void note_shape(const CpuLinear& w);
  // Rows of x in the weight's stored (rotated, padded) domain: x itself, or a rotated copy in rotated_.
  Act stored_input(Act x, const CpuLinear& w, bool input_rotated);
  Act to_stored(Act x, const CpuLinear& w, ScratchBuffer& buf);

  // Reference ops (ref_*.cpp).
  void rmsnorm_ref(Act x, const DeviceVector& w, float eps, Act out);
  void rope_ref(Act x, int64_t heads, int64_t head_stride, int64_t off, const RopeTable& t, const BatchMeta& b);
  void silu_mul_ref(Act gate, Act up, Act out);
  void linear_ref(Act x, const CpuLinear& w, Act out, bool accumulate, bool input_rotated);
  void attention_ref(Act q, const KVLayerView& kv, int64_t heads, int64_t kv_heads, int64_t head_dim, float scale,
                     const BatchMeta& b, Act out);
  void mla_attention_ref(Act q_lat, Act q_pe, const KVLayerView& kv, int64_t heads, float scale, const BatchMeta& b,
                         Act out_lat);
  void mla_absorb_q_ref(Act q_nope, const CpuLinear& kv_b, int64_t heads, int64_t nope, int64_t v, Act q_lat);
  void mla_expand_v_ref(Act o_lat, const CpuLinear& kv_b, int64_t heads, int64_t nope, int64_t v, Act out);
  void moe_route_ref(Act logits, const DeviceVector* bias, const RouterParams& p, int32_t* ids, float* weights);
  void moe_experts_ref(Act x, const int32_t* ids, const float* weights, int64_t top_k, const CpuExperts& ew,
                       Act out);

  // Fast linear on a row range of a packed weight (x already in the stored domain).
  void gemm_rows(Act x, const CpuLinear& w, int64_t row0, int64_t rows, Act out, bool accumulate);

  ThreadPool* pool_;
  bool ref_ = false;
  const CpuKernels* kr_ = nullptr;
  GemmTuning tune_;
  GemmWorkspace gemm_ws_;
  std::vector<ScratchBuffer> scratch_;  // [threads]
  ScratchBuffer rotated_;               // rotated copy of a linear's input
  // MoE scratch: grouped rows, expert inputs/outputs, per-(token, slot) results.
  ScratchBuffer moe_x_, moe_g_, moe_u_, moe_d_, moe_y_, moe_xg_, moe_xu_, moe_xd_;
  std::vector<int32_t> moe_count_, moe_offset_, moe_rows_;
  std::vector<GemmJob> jobs_;
  // Largest shapes seen at upload (workspace planning).
  int64_t max_k_ = 0, max_n_ = 0, max_expert_k_ = 0, max_expert_n_ = 0, max_experts_ = 0;
  bool any_rotated_experts_ = false;
  WorkspacePlan plan_;
  size_t allocated_ = 0;
};

// Dot product of n floats, float32 accumulation in a fixed order (independent of the caller's batch size).
float dot_f32(const float* a, const float* b, int64_t n);

}  // namespace mmfp4
