#include "model_harness.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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

std::vector<int32_t> greedy(Loaded& m, const std::vector<int32_t>& prompt, int n, bool use_cache) {
  std::vector<int32_t> seq = prompt, out;
  std::vector<float> logits(size_t(m.vocab()));
  SeqCache sc;
  if (use_cache) {
    EXPECT_TRUE(sc.reserve(*m.kv, int64_t(prompt.size()) + n));
    Batch b;
    b.seqs.push_back(&sc);
    for (size_t i = 0; i < prompt.size(); ++i) b.add(prompt[i], int32_t(i), 0, i + 1 == prompt.size());
    m.model->forward(b, *m.kv, logits.data());
    for (int step = 0; step < n; ++step) {
      const int32_t next = argmax(logits.data(), m.vocab());
      out.push_back(next);
      seq.push_back(next);
      if (step + 1 == n) break;
      Batch d;
      d.seqs.push_back(&sc);
      d.add(next, int32_t(seq.size() - 1), 0, true);
      m.model->forward(d, *m.kv, logits.data());
    }
    sc.clear(*m.kv);
    return out;
  }
  for (int step = 0; step < n; ++step) {
    std::vector<float> all = prefill_logits(m, seq);
    const int32_t next = argmax(all.data() + (seq.size() - 1) * size_t(m.vocab()), m.vocab());
    out.push_back(next);
    seq.push_back(next);
  }
  return out;
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
