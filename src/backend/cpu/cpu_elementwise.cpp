// Fast elementwise ops: AVX2 with the exp of simd_util.h, each row computed alone (batch-independent), small
// calls (a decode step's single row) run on the calling thread instead of waking the pool.
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd_util.h"
#include "core/error.h"

namespace mmfp4 {

namespace {

// Below this many floats an op is cheaper than a pool dispatch.
constexpr int64_t kInlineFloats = 1 << 15;

template <typename F>
void for_rows(ThreadPool& pool, int64_t rows, int64_t cols, F&& fn) {
  if (rows * cols <= kInlineFloats || rows == 1) {
    fn(int64_t(0), rows);
    return;
  }
  pool.parallel_for(rows, 1, [&](int64_t r0, int64_t r1, int) { fn(r0, r1); });
}

}  // namespace

void CpuBackend::rmsnorm(Act x, const DeviceVector& w, float eps, Act out) {
  if (ref_) return rmsnorm_ref(x, w, eps, out);
  MMFP4_ASSERT(w.n == x.cols && out.cols == x.cols && out.rows == x.rows);
  const int64_t n = x.cols, n8 = n / 8 * 8;
  for_rows(*pool_, x.rows, n, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x.row(r);
      float* o = out.row(r);
      const float inv = 1.0f / std::sqrt(dot_f32(xr, xr, n) / float(n) + eps);
      const __m256 vi = _mm256_set1_ps(inv);
      for (int64_t c = 0; c < n8; c += 8)
        _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + c), vi), _mm256_loadu_ps(w.data + c)));
      for (int64_t c = n8; c < n; ++c) o[c] = xr[c] * inv * w.data[c];
    }
  });
}

void CpuBackend::hadamard(Act x, int block) {
  MMFP4_ASSERT(block > 0 && x.cols % block == 0);
  for_rows(*pool_, x.rows, x.cols, [&](int64_t r0, int64_t r1) { hadamard_rows(x.row_slice(r0, r1 - r0), block); });
}

void CpuBackend::rope(Act x, int64_t heads, int64_t head_stride, int64_t off, const RopeTable& t, const BatchMeta& b) {
  if (ref_) return rope_ref(x, heads, head_stride, off, t, b);
  const int64_t half = t.dim / 2;
  for_rows(*pool_, x.rows, heads * t.dim, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t pos = b.h_positions[r];
      MMFP4_ASSERT(pos >= 0 && pos < t.max_positions);  // the model checks positions against its context
      const float* cs = t.cos + int64_t(pos) * half;
      const float* sn = t.sin + int64_t(pos) * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* p = x.row(r) + h * head_stride + off;
        int64_t i = 0;
        if (t.interleaved) {
          // Pairs (2i, 2i+1): 4 pairs per register; cos/sin duplicated to [c0 c0 c1 c1 ...].
          const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
          for (; i + 4 <= half; i += 4) {
            const __m256 v = _mm256_loadu_ps(p + 2 * i);
            const __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(cs + i)), dup);
            const __m256 s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sn + i)), dup);
            const __m256 sw = _mm256_permute_ps(v, 0xB1);  // [b0 a0 b1 a1 ...]
            // even lanes: a c - b s; odd lanes: b c + a s
            _mm256_storeu_ps(p + 2 * i, _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(sw, s)));
          }
        } else {
          for (; i + 8 <= half; i += 8) {
            const __m256 a = _mm256_loadu_ps(p + i), c = _mm256_loadu_ps(p + i + half);
            const __m256 co = _mm256_loadu_ps(cs + i), si = _mm256_loadu_ps(sn + i);
            _mm256_storeu_ps(p + i, _mm256_fmsub_ps(a, co, _mm256_mul_ps(c, si)));
            _mm256_storeu_ps(p + i + half, _mm256_fmadd_ps(c, co, _mm256_mul_ps(a, si)));
          }
        }
        rope_scalar(p, cs, sn, i, half, t.interleaved);
      }
    }
  });
}

void CpuBackend::silu_mul(Act gate, Act up, Act out) {
  if (ref_) return silu_mul_ref(gate, up, out);
  const int64_t n = gate.cols, n8 = n / 8 * 8;
  for_rows(*pool_, gate.rows, n, [&](int64_t r0, int64_t r1) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    for (int64_t r = r0; r < r1; ++r) {
      const float* g = gate.row(r);
      const float* u = up.row(r);
      float* o = out.row(r);
      for (int64_t c = 0; c < n8; c += 8) {
        const __m256 gv = _mm256_loadu_ps(g + c);
        const __m256 e = exp256(_mm256_xor_ps(gv, sign));
        _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + c)));
      }
      for (int64_t c = n8; c < n; ++c) o[c] = g[c] / (1.0f + exp_scalar(-g[c])) * u[c];
    }
  });
}

void CpuBackend::add(Act x, Act y) {
  for_rows(*pool_, x.rows, x.cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* a = x.row(r);
      const float* b = y.row(r);
      for (int64_t c = 0; c < x.cols; ++c) a[c] += b[c];
    }
  });
}

void CpuBackend::add_bias(Act x, const DeviceVector& bias) {
  MMFP4_ASSERT(bias.n == x.cols);
  for_rows(*pool_, x.rows, x.cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* a = x.row(r);
      for (int64_t c = 0; c < x.cols; ++c) a[c] += bias.data[c];
    }
  });
}

void CpuBackend::gather_rows(Act x, const int32_t* rows, int64_t n, Act out) {
  for (int64_t i = 0; i < n; ++i) std::memcpy(out.row(i), x.row(rows[i]), size_t(x.cols) * sizeof(float));
}

}  // namespace mmfp4
