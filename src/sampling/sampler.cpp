#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mmfp4 {

void SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) fail("temperature must be >= 0, got ", temperature);
  if (top_k < 0) fail("top_k must be >= 0, got ", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) fail("top_p must be in (0, 1], got ", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) fail("min_p must be in [0, 1], got ", min_p);
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty))
    fail("repetition_penalty must be > 0, got ", repetition_penalty);
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    fail("presence_penalty must be in [-2, 2], got ", presence_penalty);
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    fail("frequency_penalty must be in [-2, 2], got ", frequency_penalty);
}

void apply_generation_config(SamplingParams& p, const json::Value& gen) {
  if (!gen.is_object()) return;
  auto num = [&](const char* k, float& out) {
    if (const json::Value* v = gen.find(k); v && v->is_number()) out = float(v->as_double());
  };
  float t = p.temperature;
  num("temperature", t);
  num("top_p", p.top_p);
  num("min_p", p.min_p);
  num("repetition_penalty", p.repetition_penalty);
  if (const json::Value* v = gen.find("top_k"); v && v->is_number()) p.top_k = int32_t(v->as_int());
  // transformers samples only when do_sample is true; otherwise it is greedy whatever the temperature says.
  const json::Value* ds = gen.find("do_sample");
  if (ds && ds->is_bool() && ds->as_bool()) p.temperature = t;
}

int32_t argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return int32_t(best);
}

double log_softmax_at(const float* v, int64_t n, int32_t id) {
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(v[i]));
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(v[i]) - mx);
  return double(v[id]) - mx - std::log(s);
}

Sampler::Sampler(const SamplingParams& p, int64_t vocab) : p_(p), vocab_(vocab), rng_(p.seed) {
  p_.validate();
  cand_.reserve(size_t(vocab));
}

int32_t Sampler::sample(float* logits, const std::vector<int32_t>& history) {
  // Penalties.
  if (p_.repetition_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f) {
    counts_.assign(size_t(vocab_), 0);
    for (int32_t id : history)
      if (id >= 0 && id < vocab_) ++counts_[size_t(id)];
    for (int64_t i = 0; i < vocab_; ++i) {
      const int32_t c = counts_[size_t(i)];
      if (!c) continue;
      float& l = logits[i];
      if (p_.repetition_penalty != 1.0f) l = l < 0 ? l * p_.repetition_penalty : l / p_.repetition_penalty;
      l -= p_.presence_penalty + p_.frequency_penalty * float(c);
    }
  }
  if (p_.greedy()) return argmax(logits, vocab_);

  // Temperature, then candidates sorted by logit (descending; ties by id).
  cand_.clear();
  for (int64_t i = 0; i < vocab_; ++i) cand_.emplace_back(logits[i] / p_.temperature, int32_t(i));
  auto by_logit = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t n = cand_.size();
  if (p_.top_k > 0 && size_t(p_.top_k) < n) {
    std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
    n = size_t(p_.top_k);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // Softmax over the survivors.
  const float mx = cand_[0].first;
  double sum = 0;
  std::vector<double> prob(n);
  for (size_t i = 0; i < n; ++i) sum += (prob[i] = std::exp(double(cand_[i].first - mx)));
  for (auto& p : prob) p /= sum;
  // top-p: keep the smallest prefix whose mass reaches top_p (at least one token).
  if (p_.top_p < 1.0f) {
    double cum = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cum += prob[i];
      if (cum >= double(p_.top_p)) {
        keep = i + 1;
        break;
      }
    }
    n = std::max<size_t>(keep, 1);
  }
  // min-p: drop tokens below min_p times the most likely one.
  if (p_.min_p > 0.0f) {
    const double floor_p = double(p_.min_p) * prob[0];
    size_t keep = 1;
    while (keep < n && prob[keep] >= floor_p) ++keep;
    n = keep;
  }
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += prob[i];
  std::uniform_real_distribution<double> u(0.0, total);
  double r = u(rng_), acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += prob[i];
    if (r < acc) return cand_[i].second;
  }
  return cand_[n - 1].second;
}

}  // namespace mmfp4
