// The mmfp4 engine (public API): open a model folder once, submit generation requests from any thread, stream
// their tokens, cancel them. One background thread schedules all requests with continuous batching: new requests
// join the running batch between steps, long prompts are prefilled in chunks so they do not stall decoding,
// requests are admitted against free KV-cache blocks, identical prompt prefixes share cache blocks, and when the
// cache runs out the newest request is preempted (recomputed later) rather than anything failing.
//
//   auto engine = mmfp4::Engine::open({.model_dir = "models/tiny-glm4-moe-lite-mmfp4"});
//   mmfp4::Request r;
//   r.prompt = engine->tokenize("The quick brown fox");
//   r.max_new_tokens = 32;
//   mmfp4::Result res = engine->generate(r);          // blocking; or submit(r, on_event) to stream
//   std::cout << res.text;
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mmfp4/sampling.h"

namespace mmfp4 {

class Model;
class Tokenizer;
struct ModelConfig;

struct EngineOptions {
  std::string model_dir;
  std::string device = "auto";     // "cpu", "cuda" or "auto" (CUDA when a GPU is present)
  int threads = 0;                 // CPU threads (0: all cores, or MMFP4_THREADS)
  int64_t max_batch = 8;           // sequences in flight at once
  int64_t max_context = 0;         // tokens per sequence (0: min(model maximum, 4096))
  int64_t max_batch_tokens = 256;  // tokens per step: decodes first, then prefill chunks
  int64_t kv_blocks = 0;           // KV cache blocks of 16 tokens (0: max_batch full contexts)
  int64_t max_queue = 256;         // waiting requests before submit() refuses with QueueFull
  bool prefix_caching = true;      // share KV blocks of identical prompt prefixes between requests
  bool check = false;              // stop at the first NaN/Inf, naming layer, op and position
  bool verbose = false;            // log every op with shapes and time
  bool warmup = true;              // run one step at load so the first request is as fast as the next
};

enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct Request {
  std::vector<int32_t> prompt;        // token ids (see Engine::tokenize / apply_chat_template)
  int64_t max_new_tokens = 128;       // generation stops after this many tokens ("length")
  SamplingParams sampling;
  std::vector<std::string> stop;      // stop strings: generation ends before the first occurrence ("stop")
  std::vector<int32_t> stop_ids;      // extra stop tokens, besides the model's EOS ids
  bool ignore_eos = false;
  bool skip_special_tokens = true;    // in the streamed text
  bool logprobs = false;              // report each sampled token's log-probability
};

// One event per generated token, then a final one with finished = true (it may carry text held back by a
// partial stop-string match). Called on the engine thread: return quickly.
struct TokenEvent {
  uint64_t request_id = 0;
  int32_t token = -1;                 // -1 on the final event
  std::string text;                   // text that became printable with this token (UTF-8 safe)
  double logprob = 0;                 // if Request::logprobs
  bool finished = false;
  FinishReason reason = FinishReason::None;
  std::string error;                  // with FinishReason::Error
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_prompt_tokens = 0;  // on the final event
};
using TokenCallback = std::function<void(const TokenEvent&)>;

struct Result {
  std::vector<int32_t> prompt_ids, ids;  // generated ids (stop string / EOS excluded)
  std::string text;
  FinishReason reason = FinishReason::None;
  std::string error;
  std::vector<double> logprobs;
  int64_t cached_prompt_tokens = 0;
  double time_to_first_token_s = 0, total_s = 0;
  double prefill_tokens_per_s = 0, decode_tokens_per_s = 0;
};

struct EngineStats {
  int64_t requests_total = 0, requests_running = 0, requests_waiting = 0, requests_rejected = 0;
  int64_t prompt_tokens_total = 0, generated_tokens_total = 0, cached_prompt_tokens_total = 0;
  int64_t preemptions_total = 0, steps_total = 0;
  int64_t kv_blocks_total = 0, kv_blocks_used = 0;
  double busy_seconds = 0;
};

// Thrown by submit() when the queue is full (a server answers 429).
struct QueueFull : std::exception {
  const char* what() const noexcept override { return "the request queue is full"; }
};

class Engine {
 public:
  // Loads the model (weights, tokenizer if present), plans and allocates all memory, warms up. Throws
  // mmfp4::Error naming what is wrong.
  static std::unique_ptr<Engine> open(const EngineOptions& opt);
  ~Engine();

  // Validates the request (ids in the vocabulary, prompt + max_new_tokens within the context, sampling ranges)
  // and queues it. Throws mmfp4::Error for a bad request, QueueFull when the queue is full. Thread-safe.
  uint64_t submit(Request r, TokenCallback on_event);
  // Cancels a queued or running request (its final event has reason Cancelled). Thread-safe; unknown ids ignored.
  void cancel(uint64_t id);
  // submit() + wait. Thread-safe; many threads may call it at once (their requests are batched together).
  Result generate(const Request& r);
  // Calls on_event for each token as generate() would, on this thread, and returns the result.
  Result generate(const Request& r, const TokenCallback& on_event);

  // Logits at every position of each sequence, each run as a fresh sequence: [sum of lengths, vocab] float32,
  // sequences one after another. Runs on the engine thread between generation steps. Thread-safe.
  std::vector<float> score(const std::vector<std::vector<int32_t>>& seqs);

  const ModelConfig& config() const;
  const Tokenizer* tokenizer() const;  // null when the folder has no tokenizer.json
  Model& model();
  std::vector<int32_t> tokenize(const std::string& text, bool add_special_tokens = true) const;
  std::string detokenize(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;
  // messages: JSON array text of {"role", "content"} objects; returns the rendered prompt.
  std::string apply_chat_template(const std::string& messages_json, bool add_generation_prompt = true,
                                  const std::string& extra_context_json = "{}") const;
  std::vector<int32_t> eos_ids() const;
  // Sampling defaults from the model's generation_config.json (greedy unless it says do_sample).
  SamplingParams default_sampling() const;
  std::string model_name() const;   // folder name
  const EngineOptions& options() const;
  int64_t max_context() const;
  EngineStats stats() const;
  std::string memory_plan() const;  // human-readable: weights, KV cache, arena
  // Turns NaN/Inf checking (EngineOptions::check) on or off for the forward steps that follow. Thread-safe.
  void set_check(bool on);

  // Stops the scheduler: running and queued requests finish with Cancelled. Called by the destructor.
  void shutdown();

 private:
  Engine();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mmfp4
