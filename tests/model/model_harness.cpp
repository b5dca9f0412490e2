#include "model_harness.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "core/json.h"
#include "core/mapped_file.h"
#include "format/safetensors.h"
#include "sampling/sampler.h"

namespace mmfp4::testing {

namespace {
std::vector<int32_t> ids_of(const json::Value& v) {
  std::vector<int32_t> out;
  if (v.is_array())
    for (const auto& x : v.as_array()) out.push_back(int32_t(x.as_int()));
  return out;
}
}  // namespace

std::vector<RefCase> load_reference(const std::string& dir) {
  json::Value cases = json::parse(read_file(dir + "/reference/cases.json"), "cases.json");
  auto lf = SafetensorsFile::open(dir + "/reference/logits.safetensors");
  std::vector<RefCase> out;
  const auto& arr = cases["cases"].as_array();
  for (size_t i = 0; i < arr.size(); ++i) {
    RefCase c;
    c.input_ids = ids_of(arr[i]["input_ids"]);
    c.greedy_ids = ids_of(arr[i]["greedy_ids"]);
    c.greedy_no_cache_ids = ids_of(arr[i]["greedy_no_cache_ids"]);
    const TensorInfo* t = lf->find("logits." + std::to_string(i));
    if (!t) throw std::runtime_error("missing logits." + std::to_string(i));
    c.logits.resize(size_t(t->numel()));
    std::memcpy(c.logits.data(), t->data, t->nbytes);
    out.push_back(std::move(c));
  }
  return out;
}

Loaded load_model(const std::string& dir, const std::string& device, int64_t max_tokens, int64_t max_context,
                  int64_t kv_blocks) {
  Loaded m;
  m.be = make_backend(device);
  ModelOptions opt;
  opt.max_tokens = max_tokens;
  opt.max_context = max_context;
  m.model = Model::load(dir, *m.be, opt);
  m.kv = std::make_unique<KVCache>(*m.be, m.model->config(), kv_blocks, opt.kv_block_size);
  return m;
}

std::vector<float> prefill_logits(Loaded& m, const std::vector<int32_t>& ids) {
  SeqCache sc;
  EXPECT_TRUE(sc.reserve(*m.kv, int64_t(ids.size())));
  Batch b;
  b.seqs.push_back(&sc);
  for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], int32_t(i), 0, true);
  std::vector<float> logits(ids.size() * size_t(m.vocab()));
  m.model->forward(b, *m.kv, logits.data());
  sc.clear(*m.kv);
  return logits;
}

std::vector<float> decode_logits(Loaded& m, const std::vector<int32_t>& ids) {
  SeqCache sc;
  EXPECT_TRUE(sc.reserve(*m.kv, int64_t(ids.size())));
  std::vector<float> logits(ids.size() * size_t(m.vocab()));
  for (size_t i = 0; i < ids.size(); ++i) {
    Batch b;
    b.seqs.push_back(&sc);
    b.add(ids[i], int32_t(i), 0, true);
    m.model->forward(b, *m.kv, logits.data() + i * size_t(m.vocab()));
  }
  sc.clear(*m.kv);
  return logits;
}

std::vector<int32_t> greedy(Loaded& m, const std::vector<int32_t>& prompt, int n, bool use_cache,
                            std::vector<std::vector<float>>* step_logits) {
  const int64_t V = m.vocab();
  std::vector<int32_t> seq = prompt, out;
  std::vector<float> logits(static_cast<size_t>(V));
  SeqCache sc;
  if (use_cache) {
    EXPECT_TRUE(sc.reserve(*m.kv, int64_t(prompt.size()) + n));
    Batch b;
    b.seqs.push_back(&sc);
    for (size_t i = 0; i < prompt.size(); ++i) b.add(prompt[i], int32_t(i), 0, i + 1 == prompt.size());
    m.model->forward(b, *m.kv, logits.data());
  }
  for (int step = 0; step < n; ++step) {
    if (!use_cache) {
      const std::vector<float> all = prefill_logits(m, seq);
      std::copy(all.end() - V, all.end(), logits.begin());
    }
    if (step_logits) step_logits->push_back(logits);
    const int32_t next = argmax(logits.data(), V);
    out.push_back(next);
    seq.push_back(next);
    if (step + 1 == n || !use_cache) continue;
    Batch d;
    d.seqs.push_back(&sc);
    d.add(next, int32_t(seq.size() - 1), 0, true);
    m.model->forward(d, *m.kv, logits.data());
  }
  if (use_cache) sc.clear(*m.kv);
  return out;
}

std::vector<int32_t> random_ids(int64_t vocab, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, int32_t(vocab - 1));
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void check_prefill_equals_decode(Loaded& m, size_t n, double tol, double* worst) {
  const int64_t V = m.vocab();
  const auto ids = random_ids(V, n, 1);
  const std::vector<float> dec = decode_logits(m, ids);  // [n, V]
  for (size_t len = 1; len <= ids.size(); ++len) {
    const std::vector<int32_t> prefix(ids.begin(), ids.begin() + long(len));
    const std::vector<float> pre = prefill_logits(m, prefix);
    int64_t row = -1;
    const double err = max_row_rel_err(pre.data(), dec.data(), int64_t(len), V, &row);
    *worst = std::max(*worst, err);
    ASSERT_LT(err, tol) << "prompt length " << len << ", position " << row;
  }
}

void check_warm_up_changes_nothing(Loaded& m) {
  const auto ids = random_ids(m.vocab(), 17, 9);
  const auto before = prefill_logits(m, ids);
  const int64_t free = m.kv->free_blocks();
  m.model->warm_up(*m.kv);
  EXPECT_EQ(m.kv->free_blocks(), free);
  const auto after = prefill_logits(m, ids);
  ASSERT_EQ(before.size(), after.size());
  EXPECT_EQ(0, std::memcmp(before.data(), after.data(), before.size() * sizeof(float)));
}

void check_batch_equals_singles(Loaded& m, double tol, double* worst) {
  const int64_t V = m.vocab();
  const std::vector<std::vector<int32_t>> prompts = {random_ids(V, 7, 3), random_ids(V, 1, 4), random_ids(V, 23, 5),
                                                     random_ids(V, 4, 6)};
  // Alone.
  std::vector<std::vector<float>> alone;
  for (const auto& p : prompts) alone.push_back(prefill_logits(m, p));
  // Together, interleaved so sequences do not come in contiguous runs.
  std::vector<SeqCache> caches(prompts.size());
  Batch b;
  for (size_t s = 0; s < prompts.size(); ++s) {
    ASSERT_TRUE(caches[s].reserve(*m.kv, int64_t(prompts[s].size())));
    b.seqs.push_back(&caches[s]);
  }
  std::vector<std::pair<size_t, size_t>> order;  // (seq, pos) of each logit row
  for (size_t pos = 0; pos < 23; ++pos)
    for (size_t s = 0; s < prompts.size(); ++s)
      if (pos < prompts[s].size()) {
        b.add(prompts[s][pos], int32_t(pos), int32_t(s), true);
        order.emplace_back(s, pos);
      }
  std::vector<float> logits(b.size() * size_t(V));
  m.model->forward(b, *m.kv, logits.data());
  for (size_t r = 0; r < order.size(); ++r) {
    const auto [s, pos] = order[r];
    const double err = max_row_rel_err(logits.data() + r * size_t(V), alone[s].data() + pos * size_t(V), 1, V);
    *worst = std::max(*worst, err);
    ASSERT_LT(err, tol) << "sequence " << s << " position " << pos;
  }
  // Then one decode step of all four together (on a GPU: a graph bucket of 4) vs each alone.
  Batch d;
  for (size_t s = 0; s < prompts.size(); ++s) {
    ASSERT_TRUE(caches[s].reserve(*m.kv, int64_t(prompts[s].size()) + 1));
    d.seqs.push_back(&caches[s]);
    d.add(int32_t(s + 1), int32_t(prompts[s].size()), int32_t(s), true);
  }
  std::vector<float> step(prompts.size() * size_t(V));
  m.model->forward(d, *m.kv, step.data());
  for (size_t s = 0; s < prompts.size(); ++s) {
    auto p = prompts[s];
    p.push_back(int32_t(s + 1));
    const std::vector<float> ref = prefill_logits(m, p);
    const double err = max_row_rel_err(step.data() + s * size_t(V), ref.data() + (p.size() - 1) * size_t(V), 1, V);
    *worst = std::max(*worst, err);
    EXPECT_LT(err, tol) << "decode step of sequence " << s;
  }
  for (auto& c : caches) c.clear(*m.kv);
}

std::string folder_param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

double max_row_rel_err(const float* a, const float* b, int64_t rows, int64_t cols, int64_t* worst_row) {
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double num = 0, den = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double x = a[r * cols + c], y = b[r * cols + c];
      if (!std::isfinite(x)) return INFINITY;  // NaN never passes
      num = std::max(num, std::fabs(x - y));
      den = std::max(den, std::fabs(y));
    }
    const double e = den > 0 ? num / den : num;
    if (e > worst) {
      worst = e;
      if (worst_row) *worst_row = r;
    }
  }
  return worst;
}

}  // namespace mmfp4::testing
