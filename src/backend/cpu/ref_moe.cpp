// Reference CPU mixture-of-experts (MMFP4_CPU_REF=1): routing in float32 (docs/models.md, "MoE routing") and expert FFNs computed
// over the tokens grouped by expert, so each expert's weights are read once per batch, not once per token.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace mmfp4 {

namespace {

// Indices of the k largest values of v (descending; ties to the lower index), written to out.
void top_k(const float* v, int64_t n, int64_t k, int32_t* out) {
  std::vector<int32_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return v[a] > v[b] || (v[a] == v[b] && a < b);
  });
  std::copy(idx.begin(), idx.begin() + k, out);
}

}  // namespace

void CpuBackend::moe_route_ref(Act logits, const DeviceVector* bias, const RouterParams& p, int32_t* ids,
                           float* weights) {
  const int64_t E = p.n_experts, K = p.top_k;
  MMFP4_ASSERT(logits.cols == E);
  pool_->parallel_for(logits.rows, 1, [&](int64_t t0, int64_t t1, int) {
    std::vector<float> s(static_cast<size_t>(E)), choice(static_cast<size_t>(E));
    std::vector<int32_t> groups(static_cast<size_t>(p.n_group));
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
        for (int64_t e = 0; e < E; ++e) sum += (s[size_t(e)] = std::exp(z[e] - mx));
        for (int64_t e = 0; e < E; ++e) s[size_t(e)] /= sum;
        top_k(s.data(), E, K, id);
        float tot = 0;
        for (int64_t j = 0; j < K; ++j) tot += (w[j] = s[size_t(id[j])]);
        if (p.norm_topk_prob)
          for (int64_t j = 0; j < K; ++j) w[j] /= tot;
        continue;
      }
      // sigmoid scores; selection uses s + bias, grouped; weights use s without the bias
      for (int64_t e = 0; e < E; ++e) {
        s[size_t(e)] = 1.0f / (1.0f + std::exp(-z[e]));
        choice[size_t(e)] = s[size_t(e)] + (bias ? bias->data[e] : 0.0f);
      }
      if (p.n_group > 1) {
        const int64_t per = E / p.n_group;
        std::vector<float> gscore(static_cast<size_t>(p.n_group));
        for (int64_t g = 0; g < p.n_group; ++g) {
          // sum of the two largest scores in the group
          float a = -INFINITY, b2 = -INFINITY;
          for (int64_t e = g * per; e < (g + 1) * per; ++e) {
            float c = choice[size_t(e)];
            if (c > a) {
              b2 = a;
              a = c;
            } else if (c > b2) {
              b2 = c;
            }
          }
          gscore[size_t(g)] = a + b2;
        }
        top_k(gscore.data(), p.n_group, p.topk_group, groups.data());
        std::vector<bool> keep(static_cast<size_t>(p.n_group), false);
        for (int64_t i = 0; i < p.topk_group; ++i) keep[size_t(groups[size_t(i)])] = true;
        for (int64_t e = 0; e < E; ++e)
          if (!keep[size_t(e / per)]) choice[size_t(e)] = -INFINITY;
      }
      top_k(choice.data(), E, K, id);
      float tot = 0;
      for (int64_t j = 0; j < K; ++j) tot += (w[j] = s[size_t(id[j])]);
      if (p.norm_topk_prob)
        for (int64_t j = 0; j < K; ++j) w[j] /= (tot + 1e-20f);
      for (int64_t j = 0; j < K; ++j) w[j] *= p.routed_scaling_factor;
    }
  });
}

void CpuBackend::moe_experts_ref(Act x, const int32_t* ids, const float* weights, int64_t K, const CpuExperts& ew,
                                 Act out) {
  const int64_t T = x.rows, H = x.cols, I = ew.inter, E = ew.n_experts;
  // Group (token, slot) pairs by expert.
  std::vector<std::vector<int32_t>> rows(static_cast<size_t>(E));  // flat index t * K + j
  for (int64_t i = 0; i < T * K; ++i) {
    MMFP4_ASSERT(ids[i] >= 0 && ids[i] < E);
    rows[size_t(ids[i])].push_back(int32_t(i));
  }
  // Each (token, slot) result lands in its own row of y, then rows are summed per token in slot order, so a
  // token's output does not depend on which other tokens share the batch.
  std::vector<float> y(static_cast<size_t>(T * K * H), 0.0f);
  std::vector<float> xe, g, u, d;
  for (int64_t e = 0; e < E; ++e) {
    const auto& r = rows[size_t(e)];
    if (r.empty()) continue;
    const int64_t n = int64_t(r.size());
    xe.resize(size_t(n * H));
    g.resize(size_t(n * I));
    u.resize(size_t(n * I));
    d.resize(size_t(n * H));
    for (int64_t i = 0; i < n; ++i) std::memcpy(&xe[size_t(i * H)], x.row(r[size_t(i)] / K), size_t(H) * 4);
    Act xa(xe.data(), n, H), ga(g.data(), n, I), ua(u.data(), n, I), da(d.data(), n, H);
    linear_ref(xa, *ew.gate[size_t(e)], ga, false, false);
    linear_ref(xa, *ew.up[size_t(e)], ua, false, false);
    silu_mul_ref(ga, ua, ga);
    linear_ref(ga, *ew.down[size_t(e)], da, false, false);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t flat = r[size_t(i)];
      const float wgt = weights[flat];
      float* dst = &y[size_t(flat) * size_t(H)];
      const float* src = &d[size_t(i * H)];
      for (int64_t c = 0; c < H; ++c) dst[c] = wgt * src[c];
    }
  }
  for (int64_t t = 0; t < T; ++t) {
    float* o = out.row(t);
    for (int64_t j = 0; j < K; ++j) {
      const float* src = &y[size_t(t * K + j) * size_t(H)];
      for (int64_t c = 0; c < H; ++c) o[c] += src[c];
    }
  }
}

}  // namespace mmfp4
