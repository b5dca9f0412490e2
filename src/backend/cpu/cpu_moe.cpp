// Fast CPU mixture-of-experts. Routing: vectorised sigmoid/softmax, top-k by repeated arg-max (ties to the lower
// index, as the reference's partial sort) on per-thread scratch. Experts: the (token, slot) pairs are counting-
// sorted by expert, each expert's rows gathered once, and the gate/up GEMMs of every active expert run as one
// batch, then silu*up, then the down GEMMs as one batch (cpu_gemm.h gemm_batch): two pool dispatches per layer
// at decode, each streaming several experts' weights at once. Each (token, slot) result is kept apart and summed
// per token in slot order, so a token's output does not depend on the rest of the batch. Nothing is allocated
// once the workspace holds the step's sizes (reserve_workspace).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd_util.h"
#include "core/error.h"

namespace mmfp4 {

namespace {

// Index of the largest v[i] not yet taken (ties to the lower index); -inf entries are never preferred over
// finite ones but can still be taken when nothing else is left.
int32_t argmax_untaken(const float* v, const uint8_t* taken, int64_t n) {
  int32_t best = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (taken[i]) continue;
    if (best < 0 || v[i] > v[best]) best = int32_t(i);
  }
  return best;
}

void top_k(const float* v, int64_t n, int64_t k, int32_t* out, uint8_t* taken) {
  std::memset(taken, 0, size_t(n));
  for (int64_t j = 0; j < k; ++j) {
    out[j] = argmax_untaken(v, taken, n);
    taken[out[j]] = 1;
  }
}

}  // namespace

// Rows of x (logical width w.k) in w's stored domain: x itself, or rotated and zero-padded into buf.
Act CpuBackend::to_stored(Act x, const CpuLinear& w, ScratchBuffer& buf) {
  if (w.hadamard_block == 0) return x;
  const int64_t K = w.k_stored;
  float* r = buf.get(size_t(x.rows * K));
  for (int64_t t = 0; t < x.rows; ++t) {
    std::memcpy(r + t * K, x.row(t), size_t(x.cols) * sizeof(float));
    std::memset(r + t * K + x.cols, 0, size_t(K - x.cols) * sizeof(float));
  }
  Act y(r, x.rows, K);
  hadamard(y, w.hadamard_block);
  return y;
}

void CpuBackend::moe_route(Act logits, const DeviceVector* bias, const RouterParams& p, int32_t* ids,
                           float* weights) {
  if (ref_) return moe_route_ref(logits, bias, p, ids, weights);
  const int64_t E = p.n_experts, K = p.top_k;
  MMFP4_ASSERT(logits.cols == E && K <= E && p.n_group >= 1 && E % p.n_group == 0);
  const int64_t E8 = E / 8 * 8;
  auto route = [&](int64_t t0, int64_t t1, int th) {
    // scratch: scores s [E], choice [E], group scores [n_group], group ids [n_group], taken flags
    float* s = scratch(th, size_t(2 * E + 2 * p.n_group + E / 4 + 8));
    float* choice = s + E;
    float* gscore = choice + E;
    auto* gid = reinterpret_cast<int32_t*>(gscore + p.n_group);
    auto* taken = reinterpret_cast<uint8_t*>(gid + p.n_group);
    for (int64_t t = t0; t < t1; ++t) {
      const float* z = logits.row(t);
      int32_t* id = ids + t * p.slots();
      float* w = weights + t * p.slots();
      if (p.shared_id >= 0) id[K] = int32_t(p.shared_id), w[K] = 1.0f;
      if (!p.sigmoid) {
        // softmax over all experts, then top-k of the probabilities
        float mx = -INFINITY;
        for (int64_t e = 0; e < E; ++e) mx = std::max(mx, z[e]);
        float sum = 0;
        for (int64_t e = 0; e < E8; e += 8)
          _mm256_storeu_ps(s + e, exp256(_mm256_sub_ps(_mm256_loadu_ps(z + e), _mm256_set1_ps(mx))));
        for (int64_t e = E8; e < E; ++e) s[e] = exp_scalar(z[e] - mx);
        for (int64_t e = 0; e < E; ++e) sum += s[e];
        for (int64_t e = 0; e < E; ++e) s[e] /= sum;
        top_k(s, E, K, id, taken);
        float tot = 0;
        for (int64_t j = 0; j < K; ++j) tot += (w[j] = s[id[j]]);
        if (p.norm_topk_prob)
          for (int64_t j = 0; j < K; ++j) w[j] /= tot;
        continue;
      }
      // sigmoid scores; selection uses s + bias, grouped; weights use s without the bias
      const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
      for (int64_t e = 0; e < E8; e += 8) {
        const __m256 sv = _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_xor_ps(_mm256_loadu_ps(z + e), neg))));
        _mm256_storeu_ps(s + e, sv);
        _mm256_storeu_ps(choice + e, bias ? _mm256_add_ps(sv, _mm256_loadu_ps(bias->data + e)) : sv);
      }
      for (int64_t e = E8; e < E; ++e) {
        s[e] = 1.0f / (1.0f + exp_scalar(-z[e]));
        choice[e] = s[e] + (bias ? bias->data[e] : 0.0f);
      }
      if (p.n_group > 1) {
        const int64_t per = E / p.n_group;
        for (int64_t g = 0; g < p.n_group; ++g) {
          // sum of the two largest scores in the group
          float a = -INFINITY, b2 = -INFINITY;
          for (int64_t e = g * per; e < (g + 1) * per; ++e) {
            const float c = choice[e];
            if (c > a) {
              b2 = a;
              a = c;
            } else if (c > b2) {
              b2 = c;
            }
          }
          gscore[g] = a + b2;
        }
        top_k(gscore, p.n_group, p.topk_group, gid, taken);
        std::memset(taken, 0, size_t(p.n_group));
        for (int64_t i = 0; i < p.topk_group; ++i) taken[gid[i]] = 1;
        for (int64_t e = 0; e < E; ++e)
          if (!taken[e / per]) choice[e] = -INFINITY;
      }
      top_k(choice, E, K, id, taken);
      float tot = 0;
      for (int64_t j = 0; j < K; ++j) tot += (w[j] = s[id[j]]);
      if (p.norm_topk_prob)
        for (int64_t j = 0; j < K; ++j) w[j] /= (tot + 1e-20f);
      for (int64_t j = 0; j < K; ++j) w[j] *= p.routed_scaling_factor;
    }
  };
  if (logits.rows <= 4) {
    route(0, logits.rows, 0);
  } else {
    pool_->parallel_for(logits.rows, 1, route);
  }
}

void CpuBackend::moe_experts(Act x, const int32_t* ids, const float* weights, int64_t K, const ExpertWeights& ew_in,
                             Act out) {
  const auto& ew = static_cast<const CpuExperts&>(ew_in);
  if (ref_) return moe_experts_ref(x, ids, weights, K, ew, out);
  const int64_t T = x.rows, H = x.cols, I = ew.inter, E = ew.n_experts, N = T * K;
  MMFP4_ASSERT(H == ew.hidden && out.rows == T && out.cols == H);
  // Counting sort of the (token, slot) pairs by expert: rows_[pos] = flat index t * K + j, in flat order per expert.
  moe_count_.assign(size_t(E + 1), 0);
  for (int64_t i = 0; i < N; ++i) {
    MMFP4_ASSERT(ids[i] >= 0 && ids[i] < E);
    ++moe_count_[size_t(ids[i]) + 1];
  }
  for (int64_t e = 0; e < E; ++e) moe_count_[size_t(e + 1)] += moe_count_[size_t(e)];  // now: first row of e
  moe_offset_.assign(moe_count_.begin(), moe_count_.end());
  moe_rows_.resize(size_t(N));
  for (int64_t i = 0; i < N; ++i) moe_rows_[size_t(moe_offset_[size_t(ids[i])]++)] = int32_t(i);
  // Gather the expert inputs, row pos = token rows_[pos] / K.
  float* xe = moe_x_.get(size_t(N * H));
  float* g = moe_g_.get(size_t(N * I));
  float* u = moe_u_.get(size_t(N * I));
  float* d = moe_d_.get(size_t(N * H));
  for (int64_t i = 0; i < N; ++i) std::memcpy(xe + i * H, x.row(moe_rows_[size_t(i)] / K), size_t(H) * sizeof(float));
  // Rotated experts take their inputs in the stored (rotated, padded) domain: rotate all rows once per layer
  // (every expert of a layer shares its gate/up/down rotation, checked at load).
  const CpuLinear &g0 = *ew.gate[0], &u0 = *ew.up[0], &d0 = *ew.down[0];
  const Act xa(xe, N, H);
  const Act xg = to_stored(xa, g0, moe_xg_);
  const Act xu = u0.hadamard_block == g0.hadamard_block && u0.k_stored == g0.k_stored ? xg : to_stored(xa, u0, moe_xu_);
  jobs_.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = moe_count_[size_t(e)], n = moe_count_[size_t(e + 1)] - r0;
    if (n == 0) continue;
    jobs_.push_back(GemmJob{xg.row_slice(r0, n), &ew.gate[size_t(e)]->packed, 0, I, Act(g + r0 * I, n, I), false});
    jobs_.push_back(GemmJob{xu.row_slice(r0, n), &ew.up[size_t(e)]->packed, 0, I, Act(u + r0 * I, n, I), false});
  }
  gemm_batch(*kr_, *pool_, gemm_ws_, tune_, jobs_.data(), int64_t(jobs_.size()));
  Act ga(g, N, I);
  silu_mul(ga, Act(u, N, I), ga);
  const Act gd = to_stored(ga, d0, moe_xd_);
  jobs_.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = moe_count_[size_t(e)], n = moe_count_[size_t(e + 1)] - r0;
    if (n == 0) continue;
    jobs_.push_back(GemmJob{gd.row_slice(r0, n), &ew.down[size_t(e)]->packed, 0, H, Act(d + r0 * H, n, H), false});
  }
  gemm_batch(*kr_, *pool_, gemm_ws_, tune_, jobs_.data(), int64_t(jobs_.size()));
  // out[t] += sum over slots j in order of (w[t, j] * d[pos(t, j)]), the product rounded before the sum as in the
  // reference. pos(t, j) comes from inverting rows_ (the counting sort is stable, so use offsets again).
  auto* pos = reinterpret_cast<int32_t*>(moe_y_.get(size_t(N)));
  for (int64_t i = 0; i < N; ++i) pos[moe_rows_[size_t(i)]] = int32_t(i);
  const int64_t H8 = H / 8 * 8;
  auto combine = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* o = out.row(t);
      for (int64_t j = 0; j < K; ++j) {
        const float wgt = weights[t * K + j];
        const float* src = d + int64_t(pos[t * K + j]) * H;
        const __m256 wv = _mm256_set1_ps(wgt);
        for (int64_t c = 0; c < H8; c += 8)
          _mm256_storeu_ps(o + c, _mm256_add_ps(_mm256_loadu_ps(o + c), _mm256_mul_ps(wv, _mm256_loadu_ps(src + c))));
        for (int64_t c = H8; c < H; ++c) {
          const float y = wgt * src[c];
          o[c] = o[c] + y;
        }
      }
    }
  };
  if (T <= 4) {
    combine(0, T);
  } else {
    pool_->parallel_for(T, 1, [&](int64_t t0, int64_t t1, int) { combine(t0, t1); });
  }
}

}  // namespace mmfp4
