// A loaded model: config, weights on a backend (loaded once, shared by every sequence), the activation arena, and
// forward(): any number of tokens from any number of sequences at any positions (decode is one token per
// sequence; prefill is many; both are the same code path).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_cache.h"
#include "model/blocks.h"
#include "model/config.h"
#include "model/tracer.h"

namespace mmfp4 {

struct ModelOptions {
  int64_t max_tokens = 256;   // tokens per forward step; larger batches are run in consecutive steps
  int64_t max_context = 0;    // positions per sequence (0: min(max_position_embeddings, 4096))
  int64_t kv_block_size = 16; // tokens per KV cache block (the KVCache used with this model must match)
  bool check = false;         // --check / MMFP4_CHECK=1: stop at the first NaN/Inf, naming layer, op and position
  bool verbose = false;       // --verbose: log every op with shape and time
  // Backends with step graphs (CUDA): a step whose tokens all want logits and number at most this many (decode)
  // replays a graph recorded once per bucket (1, 2, 4, .. tokens; padding tokens store nothing). 0: never.
  int64_t graph_max_tokens = 64;
};

// One forward step's tokens. Token i belongs to sequence seq[i] (an index into seqs) at position positions[i];
// the sequence's cache must already have blocks for every position it writes (SeqCache::reserve).
struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;
  std::vector<int32_t> seq;
  std::vector<const SeqCache*> seqs;
  std::vector<int32_t> logit_rows;  // indices of the tokens whose logits forward() returns, in this order

  void add(int32_t token, int32_t position, int32_t seq_index, bool want_logits) {
    if (want_logits) logit_rows.push_back(int32_t(tokens.size()));
    tokens.push_back(token);
    positions.push_back(position);
    seq.push_back(seq_index);
  }
  size_t size() const { return tokens.size(); }
};

class Model {
 public:
  // Reads config.json and the weights of `dir`, validates them against the architecture, uploads and repacks
  // every weight, allocates the activation arena and the RoPE tables. Throws mmfp4::Error naming what is wrong.
  static std::unique_ptr<Model> load(const std::string& dir, Backend& be, const ModelOptions& opt = {});
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  Backend& backend() const { return be_; }
  const std::string& dir() const { return dir_; }
  int64_t weight_bytes() const { return weight_bytes_; }
  int64_t arena_bytes() const { return arena_bytes_; }
  int64_t max_tokens() const { return opt_.max_tokens; }
  int64_t max_context() const { return max_context_; }
  int64_t vocab_size() const { return cfg_.vocab_size; }

  // Runs the batch through the model, writing its K/V into `kv`, and returns the logits of b.logit_rows in
  // `logits` [b.logit_rows.size(), vocab] (host memory). Throws mmfp4::Error for bad ids, positions past the
  // context, or missing cache blocks; nothing is written to the cache then.
  void forward(const Batch& b, KVCache& kv, float* logits);
  // As forward(), but returns only the argmax (greedy token, ties to the lowest id) of each logit row in
  // ids [b.logit_rows.size()]: the argmax runs on the device, so a vocabulary of logits is not copied per row.
  void forward_greedy(const Batch& b, KVCache& kv, int32_t* ids);

  void set_check(bool on) { tracer_ = Tracer(on, opt_.verbose); opt_.check = on; }

  // Records the step graph of every bucket for cache `kv` now (load-time warm-up), so no request pays for it.
  // Without it, a bucket's graph is recorded the first time a step of that size runs. No-op on the CPU.
  void prepare_graphs(KVCache& kv);
  // Load-time warm-up (after prepare_graphs): one prefill and one decode step through the whole model, so that every
  // weight page, kernel and buffer is touched before the first request; on a GPU also one prefill of the largest
  // step (max_tokens, within the context), whose products take other kernels (cuBLAS, loaded on first use). Leaves
  // `kv` as it found it.
  void warm_up(KVCache& kv);
  // Drops the recorded step graphs (the next step of each bucket records again): for measurement tools that change
  // what the backend issues between recordings.
  void clear_graphs() { graphs_.clear(); }

 private:
  Model(const std::string& dir, Backend& be, const ModelConfig& cfg, const ModelOptions& opt);
  void validate(const Batch& b, const KVCache& kv) const;
  void forward_impl(const Batch& b, KVCache& kv, float* logits, int32_t* ids);
  // Writes logits (or, when logits is null, argmax ids) of the chunk's logit rows at row logit_base onwards.
  void run_chunk(const Batch& b, size_t begin, size_t end, KVCache& kv, float* logits, int32_t* ids,
                 size_t logit_base);
  // The ops of one step (embedding to logits of n_rows gathered rows): run eagerly, or recorded into a graph.
  void run_ops(const BatchMeta& m, KVCache& kv, int64_t n_rows);
  int64_t graph_bucket(int64_t T) const;
  StepGraph& graph_for(const BatchMeta& m, KVCache& kv);

  std::string dir_;
  Backend& be_;
  ModelConfig cfg_;
  ModelOptions opt_;
  int64_t max_context_ = 0;
  int64_t weight_bytes_ = 0, arena_bytes_ = 0;

  std::unique_ptr<LinearWeight> embed_;    // [vocab, hidden]
  std::unique_ptr<LinearWeight> lm_head_;  // [vocab, hidden]; null when tied (embed_ is used)
  DeviceVector final_norm_;                // [hidden]
  std::vector<DecoderLayer> layers_;

  RopeTable rope_;
  std::vector<void*> owned_;               // device allocations to release

  // Activation arena (device): x, h [max_tokens, hidden]; blocks' shared region; logits path.
  float* x_ = nullptr;
  float* h_ = nullptr;
  float* sel_ = nullptr;     // [max_tokens, hidden] rows that need logits
  float* logits_ = nullptr;  // [max_tokens, vocab]
  int32_t* meta_ = nullptr;  // device batch metadata
  int64_t meta_ints_ = 0;
  std::vector<int32_t> h_meta_;  // host mirror
  Tracer tracer_{false, false};
  std::map<int64_t, std::unique_ptr<StepGraph>> graphs_;  // by bucket; they hold the cache's layer pointers:
  std::vector<void*> graph_kv_;                            // the layers they were recorded for
};

}  // namespace mmfp4
