#include "backend/cpu/cpu_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/simd_util.h"
#include "core/env.h"
#include "core/error.h"
#include "core/half.h"
#include "core/log.h"

namespace mmfp4 {

namespace {

// E2M1 code -> value (docs/format.md): bit 3 is the sign.
constexpr float kE2M1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};

// Rows of x a decode step may bring when no WorkspacePlan says more (scratch for them is taken at upload).
constexpr int64_t kDecodeRows = 16;

std::shared_ptr<uint8_t> aligned_bytes(size_t n) {
  void* p = std::aligned_alloc(64, std::max<size_t>(64, (n + 63) / 64 * 64));
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

}  // namespace

void CpuLinear::stored_row(int64_t row, float* out) const {
  if (!reference) return packed_row(packed, row, out);
  if (format == WeightFormat::MMFP4) {
    const uint32_t* w = codes + row * (k_stored / 8);
    const uint16_t* s = scales + row * (k_stored / group_size);
    for (int64_t g = 0; g < k_stored / group_size; ++g) {
      const float sc = f16_to_f32(s[g]);
      for (int64_t j = g * group_size; j < (g + 1) * group_size; j += 8) {
        uint32_t word = w[j / 8];
        for (int b = 0; b < 8; ++b) out[j + b] = kE2M1[(word >> (4 * b)) & 0xF] * sc;
      }
    }
    return;
  }
  switch (dtype) {
    case DType::F32: std::memcpy(out, static_cast<const float*>(data) + row * k, size_t(k) * 4); break;
    case DType::F16: {
      const uint16_t* p = static_cast<const uint16_t*>(data) + row * k;
      for (int64_t j = 0; j < k; ++j) out[j] = f16_to_f32(p[j]);
      break;
    }
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(data) + row * k;
      for (int64_t j = 0; j < k; ++j) out[j] = bf16_to_f32(p[j]);
      break;
    }
    default: MMFP4_ASSERT(false && "dense weights are F32, F16 or BF16 (checked at load)");
  }
}

CpuBackend::CpuBackend(int threads) : CpuBackend(CpuOptions{threads, -1, nullptr}) {}

CpuBackend::CpuBackend(const CpuOptions& opt) {
  if (opt.threads > 0) ThreadPool::set_global_threads(opt.threads);
  pool_ = &ThreadPool::global();
  ref_ = opt.reference >= 0 ? opt.reference > 0 : env_bool("MMFP4_CPU_REF").value_or(false);
  const CpuIsa isa = opt.isa ? choose_isa(detect_cpu_features(), opt.isa) : runtime_isa();
  kr_ = &cpu_kernels(isa);
  tune_ = default_tuning(*kr_);
  scratch_.resize(size_t(pool_->size()));
  gemm_ws_.resize_threads(pool_->size());
}

CpuBackend::~CpuBackend() = default;

std::string CpuBackend::name() const {
  if (ref_) return cat("cpu (reference, ", pool_->size(), " threads)");
  return cat("cpu (", isa_name(kr_->isa), ", ", pool_->size(), " threads)");
}

void* CpuBackend::alloc(size_t bytes, const std::string& what) {
  void* p = std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64));
  if (!p) fail("out of host memory allocating ", bytes, " bytes for ", what, " (", free_memory(), " bytes available)");
  // Touch every page now: memory is taken at load, never lazily during a request.
  std::memset(p, 0, bytes);
  allocated_ += bytes;
  return p;
}

void CpuBackend::release(void* p) { std::free(p); }
void CpuBackend::upload(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::download(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

size_t CpuBackend::free_memory() const {
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return size_t(sysconf(_SC_AVPHYS_PAGES)) * size_t(sysconf(_SC_PAGESIZE));
  char line[256];
  size_t kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %zu kB", &kb) == 1) break;
  std::fclose(f);
  return kb * 1024;
}

void CpuBackend::reserve_scratch(size_t n) {
  for (auto& s : scratch_) s.get(n);
}

std::unique_ptr<CpuLinear> CpuBackend::make_linear(const HostWeight& w) {
  auto out = std::make_unique<CpuLinear>();
  out->name = w.name;
  out->n = w.n;
  out->k = w.k;
  out->format = w.format;
  out->hadamard_block = w.hadamard_block;
  out->reference = ref_;
  out->dtype = w.dtype;
  out->k_stored = w.format == WeightFormat::MMFP4 ? w.k_stored : w.k;
  out->group_size = w.group_size;
  if (w.format != WeightFormat::MMFP4 && w.dtype != DType::F32 && w.dtype != DType::F16 && w.dtype != DType::BF16)
    fail(w.name, ": dense weights must be F32, F16 or BF16, got ", dtype_name(w.dtype));
  if (!ref_) {
    // Weight surgery for the fast kernels: repack into the P64 layout (packed_weight.h).
    const PackedWeight shape = packed_shape(w);
    out->mem = aligned_bytes(size_t(shape.bytes()));
    out->packed = pack_weight(w, out->mem.get(), pool_);
    out->bytes = shape.bytes();
  } else if (w.format == WeightFormat::MMFP4) {
    const size_t code_bytes = size_t(w.n) * size_t(w.k_stored / 8) * 4;
    const size_t scale_bytes = size_t(w.n) * size_t(w.k_stored / w.group_size) * 2;
    out->mem = aligned_bytes(code_bytes + scale_bytes + 64);
    std::memcpy(out->mem.get(), w.codes, code_bytes);
    uint8_t* sp = out->mem.get() + (code_bytes + 63) / 64 * 64;
    std::memcpy(sp, w.scales, scale_bytes);
    out->codes = reinterpret_cast<const uint32_t*>(out->mem.get());
    out->scales = reinterpret_cast<const uint16_t*>(sp);
    out->bytes = int64_t(code_bytes + scale_bytes);
  } else {
    const size_t bytes = size_t(w.n) * size_t(w.k) * dtype_size(w.dtype);
    out->mem = aligned_bytes(bytes);
    std::memcpy(out->mem.get(), w.data, bytes);
    out->data = out->mem.get();
    out->bytes = int64_t(bytes);
  }
  allocated_ += size_t(out->bytes);
  return out;
}

void CpuBackend::note_shape(const CpuLinear& w) {
  max_k_ = std::max(max_k_, w.k_stored);
  max_n_ = std::max(max_n_, w.n);
}

std::unique_ptr<LinearWeight> CpuBackend::upload_linear(const HostWeight& w) {
  auto lw = make_linear(w);
  note_shape(*lw);
  reserve_scratch(size_t(lw->k_stored));
  if (!ref_) {
    gemm_reserve(gemm_ws_, *kr_, tune_, pool_->size(), std::max(kDecodeRows, plan_.max_tokens), max_k_);
    rotated_.get(size_t(std::max(kDecodeRows, plan_.max_tokens) * max_k_));
  }
  return lw;
}

std::unique_ptr<ExpertWeights> CpuBackend::upload_experts(const std::vector<HostWeight>& gate,
                                                          const std::vector<HostWeight>& up,
                                                          const std::vector<HostWeight>& down) {
  MMFP4_ASSERT(gate.size() == up.size() && up.size() == down.size() && !gate.empty());
  auto e = std::make_unique<CpuExperts>();
  e->n_experts = int64_t(gate.size());
  e->hidden = gate[0].k;
  e->inter = gate[0].n;
  for (size_t i = 0; i < gate.size(); ++i) {
    e->gate.push_back(make_linear(gate[i]));
    e->up.push_back(make_linear(up[i]));
    e->down.push_back(make_linear(down[i]));
    e->bytes += e->gate.back()->bytes + e->up.back()->bytes + e->down.back()->bytes;
  }
  note_shape(*e->gate[0]);
  note_shape(*e->down[0]);
  max_expert_k_ = std::max({max_expert_k_, e->gate[0]->k_stored, e->down[0]->k_stored});
  max_expert_n_ = std::max({max_expert_n_, e->inter, e->hidden});
  max_experts_ = std::max(max_experts_, e->n_experts);
  any_rotated_experts_ = any_rotated_experts_ || e->gate[0]->hadamard_block > 0 || e->up[0]->hadamard_block > 0 ||
                         e->down[0]->hadamard_block > 0;
  reserve_scratch(size_t(std::max(e->gate[0]->k_stored, e->down[0]->k_stored)));
  if (!ref_) reserve_workspace(plan_);
  return e;
}

void CpuBackend::reserve_workspace(const WorkspacePlan& plan_in) {
  plan_.max_tokens = std::max(plan_.max_tokens, plan_in.max_tokens);
  plan_.max_context = std::max(plan_.max_context, plan_in.max_context);
  plan_.max_heads = std::max(plan_.max_heads, plan_in.max_heads);
  plan_.max_kv_width = std::max(plan_.max_kv_width, plan_in.max_kv_width);
  plan_.max_top_k = std::max(plan_.max_top_k, plan_in.max_top_k);
  if (ref_) return;
  const int64_t T = std::max(kDecodeRows, plan_.max_tokens);
  gemm_reserve(gemm_ws_, *kr_, tune_, pool_->size(), T, max_k_);
  rotated_.get(size_t(T * max_k_));
  // Attention: scores of one head group over the context and its output accumulators (cpu_attention.cpp).
  const int64_t att = plan_.max_context * (plan_.max_heads + 4) + 64;
  reserve_scratch(size_t(std::max({att, max_k_, int64_t(1)})));
  // MoE: every (token, slot) row of the largest step.
  if (max_experts_ > 0) {
    const int64_t rows = T * (plan_.max_top_k > 0 ? plan_.max_top_k : 8);
    moe_x_.get(size_t(rows * max_expert_k_));
    moe_g_.get(size_t(rows * max_expert_n_));
    moe_u_.get(size_t(rows * max_expert_n_));
    moe_d_.get(size_t(rows * max_expert_n_));
    moe_y_.get(size_t(rows * max_expert_n_));
    if (any_rotated_experts_) {
      moe_xg_.get(size_t(rows * max_expert_k_));
      moe_xu_.get(size_t(rows * max_expert_k_));
      moe_xd_.get(size_t(rows * max_expert_k_));
    }
    moe_count_.reserve(size_t(max_experts_ + 1));
    moe_offset_.reserve(size_t(max_experts_ + 1));
    moe_rows_.reserve(size_t(rows));
  }
  jobs_.reserve(size_t(std::max<int64_t>({3 * max_experts_, plan_.max_heads, 256})));
  gemm_ws_.task_start.reserve(jobs_.capacity() + 1);
}

// ---- ops with one form for both backends ----

void CpuBackend::embed(const LinearWeight& table_in, const BatchMeta& b, Act out) {
  const auto& table = static_cast<const CpuLinear&>(table_in);
  // One row per token in either layout, un-rotated (W = W' H block-wise) when the table is rotated; the vector
  // transform is bit-identical to the scalar one, so both backends embed identically.
  pool_->parallel_for(b.n_tokens, 1, [&](int64_t t0, int64_t t1, int th) {
    float* row = scratch(th, size_t(table.k_stored));
    for (int64_t t = t0; t < t1; ++t) {
      const int32_t id = b.tokens[t];
      MMFP4_ASSERT(id >= 0 && id < table.n);  // ids are validated before a batch is built
      table.stored_row(id, row);
      if (table.hadamard_block > 0) hadamard_rows(Act(row, 1, table.k_stored), table.hadamard_block);
      std::memcpy(out.row(t), row, size_t(out.cols) * sizeof(float));
    }
  });
}

void CpuBackend::argmax_rows(Act x, int32_t* ids) {
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* p = x.row(r);
    int64_t best = 0;
    for (int64_t c = 1; c < x.cols; ++c)
      if (p[c] > p[best]) best = c;
    ids[r] = int32_t(best);
  }
}

}  // namespace mmfp4
