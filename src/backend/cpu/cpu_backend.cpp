#include "backend/cpu/cpu_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/fwht.h"
#include "core/error.h"
#include "core/half.h"
#include "core/log.h"

namespace mmfp4 {

namespace {

// E2M1 code -> value (docs/format.md): bit 3 is the sign.
constexpr float kE2M1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};

std::shared_ptr<uint8_t> aligned_bytes(size_t n) {
  void* p = std::aligned_alloc(64, std::max<size_t>(64, (n + 63) / 64 * 64));
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

}  // namespace

void CpuLinear::stored_row(int64_t row, float* out) const {
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

CpuBackend::CpuBackend(int threads) {
  if (threads > 0) ThreadPool::set_global_threads(threads);
  pool_ = &ThreadPool::global();
  scratch_.resize(size_t(pool_->size()));
}

CpuBackend::~CpuBackend() = default;

std::string CpuBackend::name() const {
  bool avx512 = __builtin_cpu_supports("avx512f");
  return cat("cpu (", avx512 ? "avx512" : "avx2", ", ", pool_->size(), " threads)");
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

float* CpuBackend::scratch(int thread, size_t n) {
  auto& s = scratch_[size_t(thread)];
  if (s.size() < n) s.resize(n);
  return s.data();
}

void CpuBackend::reserve_scratch(size_t n) {
  for (auto& s : scratch_)
    if (s.size() < n) s.resize(n);
}

std::unique_ptr<CpuLinear> CpuBackend::make_linear(const HostWeight& w) {
  auto out = std::make_unique<CpuLinear>();
  out->name = w.name;
  out->n = w.n;
  out->k = w.k;
  out->format = w.format;
  out->hadamard_block = w.hadamard_block;
  if (w.format == WeightFormat::MMFP4) {
    out->k_stored = w.k_stored;
    out->group_size = w.group_size;
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
    if (w.dtype != DType::F32 && w.dtype != DType::F16 && w.dtype != DType::BF16)
      fail(w.name, ": dense weights must be F32, F16 or BF16, got ", dtype_name(w.dtype));
    out->k_stored = w.k;
    out->dtype = w.dtype;
    const size_t bytes = size_t(w.n) * size_t(w.k) * dtype_size(w.dtype);
    out->mem = aligned_bytes(bytes);
    std::memcpy(out->mem.get(), w.data, bytes);
    out->data = out->mem.get();
    out->bytes = int64_t(bytes);
  }
  allocated_ += size_t(out->bytes);
  return out;
}

std::unique_ptr<LinearWeight> CpuBackend::upload_linear(const HostWeight& w) {
  auto lw = make_linear(w);
  reserve_scratch(size_t(lw->k_stored));
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
  reserve_scratch(size_t(std::max(e->gate[0]->k_stored, e->down[0]->k_stored)));
  return e;
}

void CpuBackend::embed(const LinearWeight& table_in, const BatchMeta& b, Act out) {
  const auto& table = static_cast<const CpuLinear&>(table_in);
  pool_->parallel_for(b.n_tokens, 1, [&](int64_t t0, int64_t t1, int th) {
    float* row = scratch(th, size_t(table.k_stored));
    for (int64_t t = t0; t < t1; ++t) {
      const int32_t id = b.tokens[t];
      MMFP4_ASSERT(id >= 0 && id < table.n);  // ids are validated before a batch is built
      table.stored_row(id, row);
      if (table.hadamard_block > 0)  // undo the rotation: W = W' H block-wise
        for (int64_t j = 0; j < table.k_stored; j += table.hadamard_block) fwht_inplace(row + j, table.hadamard_block);
      std::memcpy(out.row(t), row, size_t(out.cols) * sizeof(float));
    }
  });
}

void CpuBackend::rmsnorm(Act x, const DeviceVector& w, float eps, Act out) {
  MMFP4_ASSERT(w.n == x.cols && out.cols == x.cols && out.rows == x.rows);
  pool_->parallel_for(x.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x.row(r);
      float* o = out.row(r);
      const float ms = dot_f32(xr, xr, x.cols) / float(x.cols);
      const float inv = 1.0f / std::sqrt(ms + eps);
      for (int64_t c = 0; c < x.cols; ++c) o[c] = xr[c] * inv * w.data[c];
    }
  });
}

void CpuBackend::hadamard(Act x, int block) {
  MMFP4_ASSERT(block > 0 && x.cols % block == 0);
  pool_->parallel_for(x.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < x.cols; c += block) fwht_inplace(x.row(r) + c, block);
  });
}

void CpuBackend::rope(Act x, int64_t heads, int64_t head_stride, int64_t off, const RopeTable& t, const BatchMeta& b) {
  const int64_t half = t.dim / 2;
  pool_->parallel_for(x.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t pos = b.h_positions[r];
      MMFP4_ASSERT(pos >= 0 && pos < t.max_positions);  // the model checks positions against its context
      const float* cs = t.cos + int64_t(pos) * half;
      const float* sn = t.sin + int64_t(pos) * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* p = x.row(r) + h * head_stride + off;
        if (t.interleaved) {
          for (int64_t i = 0; i < half; ++i) {
            float a = p[2 * i], c = p[2 * i + 1];
            p[2 * i] = a * cs[i] - c * sn[i];
            p[2 * i + 1] = c * cs[i] + a * sn[i];
          }
        } else {
          for (int64_t i = 0; i < half; ++i) {
            float a = p[i], c = p[i + half];
            p[i] = a * cs[i] - c * sn[i];
            p[i + half] = c * cs[i] + a * sn[i];
          }
        }
      }
    }
  });
}

void CpuBackend::silu_mul(Act gate, Act up, Act out) {
  pool_->parallel_for(gate.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* g = gate.row(r);
      const float* u = up.row(r);
      float* o = out.row(r);
      for (int64_t c = 0; c < gate.cols; ++c) o[c] = g[c] / (1.0f + std::exp(-g[c])) * u[c];
    }
  });
}

void CpuBackend::add(Act x, Act y) {
  for (int64_t r = 0; r < x.rows; ++r) {
    float* a = x.row(r);
    const float* b = y.row(r);
    for (int64_t c = 0; c < x.cols; ++c) a[c] += b[c];
  }
}

void CpuBackend::add_bias(Act x, const DeviceVector& bias) {
  MMFP4_ASSERT(bias.n == x.cols);
  for (int64_t r = 0; r < x.rows; ++r) {
    float* a = x.row(r);
    for (int64_t c = 0; c < x.cols; ++c) a[c] += bias.data[c];
  }
}

void CpuBackend::gather_rows(Act x, const int32_t* rows, int64_t n, Act out) {
  for (int64_t i = 0; i < n; ++i) std::memcpy(out.row(i), x.row(rows[i]), size_t(x.cols) * sizeof(float));
}

}  // namespace mmfp4
