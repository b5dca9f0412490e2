// Fast linear layers and MLA's per-head kv_b products on P64-packed weights (cpu_gemm.h, gemm_kernels.h).
#include <algorithm>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd_util.h"
#include "core/error.h"

namespace mmfp4 {

Act CpuBackend::stored_input(Act x, const CpuLinear& w, bool input_rotated) {
  if (w.hadamard_block == 0 || input_rotated) {
    MMFP4_ASSERT(x.cols == w.k_stored);
    return x;
  }
  // y = W' (H x): zero-pad x to the stored width, then rotate each block (docs/format.md section 4).
  MMFP4_ASSERT(x.cols == w.k);
  const int64_t T = x.rows, K = w.k_stored;
  float* rot = rotated_.get(size_t(T * K));
  auto rows = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* r = rot + t * K;
      std::memcpy(r, x.row(t), size_t(w.k) * sizeof(float));
      std::memset(r + w.k, 0, size_t(K - w.k) * sizeof(float));
      for (int64_t c = 0; c < K; c += w.hadamard_block) fwht_vec(r + c, w.hadamard_block);
    }
  };
  if (T * K <= (1 << 15)) {
    rows(0, T);
  } else {
    pool_->parallel_for(T, 1, [&](int64_t t0, int64_t t1, int) { rows(t0, t1); });
  }
  return Act(rot, T, K);
}

void CpuBackend::gemm_rows(Act x, const CpuLinear& w, int64_t row0, int64_t rows, Act out, bool accumulate) {
  gemm(*kr_, *pool_, gemm_ws_, tune_, x, w.packed, row0, rows, out, accumulate);
}

void CpuBackend::linear(Act x, const LinearWeight& lw, Act out, bool accumulate, bool input_rotated) {
  const auto& w = static_cast<const CpuLinear&>(lw);
  if (ref_) return linear_ref(x, w, out, accumulate, input_rotated);
  MMFP4_ASSERT(out.rows == x.rows && out.cols == w.n);
  gemm_rows(stored_input(x, w, input_rotated), w, 0, w.n, out, accumulate);
}

void CpuBackend::mla_absorb_q(Act q_nope, const LinearWeight& kv_b_in, int64_t heads, int64_t nope, int64_t v,
                              Act q_lat) {
  const auto& kv_b = static_cast<const CpuLinear&>(kv_b_in);
  if (ref_) return mla_absorb_q_ref(q_nope, kv_b, heads, nope, v, q_lat);
  const int64_t R = kv_b.k_stored, rows = q_nope.rows;
  MMFP4_ASSERT(q_lat.cols == R && q_nope.cols == nope && q_lat.rows == rows && rows % heads == 0);
  const int64_t lanes = kr_->absorb_lanes;
  const bool kernel = kv_b.packed.mmfp4() && (nope + v) % lanes == 0 && nope % lanes == 0 && nope <= 1024;
  pool_->run(heads, [&](int64_t h, int th) {
    const int64_t row0 = h * (nope + v);
    if (kernel) {
      // The head's rows of q_nope / q_lat are every heads-th row; the kernel takes up to absorb_max_q at once.
      const int64_t T = rows / heads;
      for (int64_t t = 0; t < T; t += kr_->absorb_max_q) {
        const int nq = int(std::min<int64_t>(kr_->absorb_max_q, T - t));
        kr_->absorb(kv_b.packed, row0, nope, q_nope.row(t * heads + h), heads * q_nope.stride, nq,
                    q_lat.row(t * heads + h), heads * q_lat.stride);
      }
      return;
    }
    // Any other shape or format: serial over the head's rows, vectorised along the latent.
    float* wrow = scratch(th, size_t(R));
    for (int64_t r = h; r < rows; r += heads) std::memset(q_lat.row(r), 0, size_t(R) * sizeof(float));
    for (int64_t i = 0; i < nope; ++i) {
      kv_b.stored_row(row0 + i, wrow);
      for (int64_t r = h; r < rows; r += heads) {
        const float s = q_nope.row(r)[i];
        float* o = q_lat.row(r);
        for (int64_t j = 0; j < R; ++j) o[j] = std::fma(s, wrow[j], o[j]);
      }
    }
  });
}

void CpuBackend::mla_expand_v(Act o_lat, const LinearWeight& kv_b_in, int64_t heads, int64_t nope, int64_t v,
                              Act out) {
  const auto& kv_b = static_cast<const CpuLinear&>(kv_b_in);
  if (ref_) return mla_expand_v_ref(o_lat, kv_b, heads, nope, v, out);
  const int64_t R = kv_b.k_stored, rows = o_lat.rows, T = rows / heads;
  MMFP4_ASSERT(o_lat.cols == R && out.cols == v && out.rows == rows && rows % heads == 0);
  // Head h: out[t, h] = W_UV_h o_lat[t, h], a GEMM on weight rows [h(nope+v) + nope, +v) with the head's rows of
  // o_lat and out as strided views; all heads run as one batch.
  jobs_.clear();
  for (int64_t h = 0; h < heads; ++h) {
    GemmJob j;
    j.x = Act(o_lat.row(h), T, R, heads * o_lat.stride);
    j.w = &kv_b.packed;
    j.row0 = h * (nope + v) + nope;
    j.rows = v;
    j.out = Act(out.row(h), T, v, heads * out.stride);
    jobs_.push_back(j);
  }
  gemm_batch(*kr_, *pool_, gemm_ws_, tune_, jobs_.data(), int64_t(jobs_.size()));
}

}  // namespace mmfp4
