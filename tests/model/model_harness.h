// Shared helpers for model tests: load a model folder with its reference cases, run prefill / decode / greedy
// generation through Model + KVCache directly, compare logits.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_cache.h"
#include "model/model.h"

namespace mmfp4::testing {

inline std::string shared_path(const std::string& rel) { return std::string(MMFP4_SHARED_DIR) + "/" + rel; }

struct RefCase {
  std::vector<int32_t> input_ids, greedy_ids, greedy_no_cache_ids;
  std::vector<float> logits;  // [len(input_ids), vocab]
};

// reference/cases.json + reference/logits.safetensors of a fixture or model folder.
std::vector<RefCase> load_reference(const std::string& dir);

// A model with its own KV cache on a backend.
struct Loaded {
  std::unique_ptr<Backend> be;
  std::unique_ptr<Model> model;
  std::unique_ptr<KVCache> kv;
  int64_t vocab() const { return model->vocab_size(); }
};
Loaded load_model(const std::string& dir, const std::string& device = "cpu", int64_t max_tokens = 128,
                  int64_t max_context = 512, int64_t kv_blocks = 256);

// Logits [ids.size(), vocab] for a whole prompt run as one forward (fresh sequence).
std::vector<float> prefill_logits(Loaded& m, const std::vector<int32_t>& ids);
// Logits [ids.size(), vocab] from feeding the ids one token per forward (fresh sequence).
std::vector<float> decode_logits(Loaded& m, const std::vector<int32_t>& ids);
// Greedy continuation of n tokens, with the KV cache (prefill + one token per step) or without it (the whole
// sequence recomputed from scratch every step); step_logits, if given, receives the logits each token was chosen
// from.
std::vector<int32_t> greedy(Loaded& m, const std::vector<int32_t>& prompt, int n, bool use_cache,
                            std::vector<std::vector<float>>* step_logits = nullptr);

// n token ids drawn uniformly from [0, vocab) by a seeded generator.
std::vector<int32_t> random_ids(int64_t vocab, size_t n, uint64_t seed);

// The invariants the seed stack broke, as gtest checks on any backend (tests/model/test_invariants.cpp on the CPU,
// tests/cuda/test_cuda_models.cpp on the GPU); each adds its worst row error to *worst (max).
// A forward over every prompt length 1..n equals token-by-token decode at every position.
void check_prefill_equals_decode(Loaded& m, size_t n, double tol, double* worst);
// Four prompts of different lengths, interleaved in one batch, equal each prompt alone; then one decode step of all
// four together equals each alone.
void check_batch_equals_singles(Loaded& m, double tol, double* worst);
// The load-time warm-up (Model::warm_up, run by the engine and `mmfp4 bench`) gives every KV block back and changes
// no result: a prompt's logits after it are the bits of those before it.
void check_warm_up_changes_nothing(Loaded& m);

// A gtest parameter name from a folder path ("fixtures/parity/llama3" -> "fixtures_parity_llama3").
std::string folder_param_name(const ::testing::TestParamInfo<std::string>& info);

// max |a - b| / max |b| over each row of [rows, cols]; returns the worst row's value.
double max_row_rel_err(const float* a, const float* b, int64_t rows, int64_t cols, int64_t* worst_row = nullptr);

}  // namespace mmfp4::testing
