// Reading an OpenAI request body: typed fields with ranges, and the generation parameters both endpoints share.
// Every problem is an ApiError(400) naming the field (as vLLM and llama-server answer), never an assert.
// Unknown fields are ignored, as vLLM does, so clients that send newer fields keep working; fields we know and
// cannot honour (logit_bias, tools, top alternatives in logprobs, ...) are refused rather than silently dropped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "mmfp4/engine.h"

namespace mmfp4::server {

// The request body as JSON (400 "invalid JSON ..." with line and column) that must be an object.
json::Value parse_body(std::string_view body);

class Fields {
 public:
  explicit Fields(const json::Value& obj) : obj_(obj) {}
  // The field, or nullptr when absent or null (JSON null means "use the default", as in the OpenAI API).
  const json::Value* get(std::string_view name) const;
  std::optional<bool> boolean(std::string_view name) const;
  std::optional<int64_t> integer(std::string_view name, int64_t lo, int64_t hi) const;
  std::optional<double> number(std::string_view name, double lo, double hi, bool lo_open = false) const;
  std::optional<std::string> string(std::string_view name) const;
  const json::Value& object() const { return obj_; }

 private:
  const json::Value& obj_;
};

// An integer JSON value (an Int, or a Double holding an integral value in range), or nullopt.
std::optional<int64_t> as_integer(const json::Value& v);

// The parameters shared by /v1/completions and /v1/chat/completions.
struct GenerationParams {
  std::optional<int64_t> max_tokens;  // absent: the endpoint's default
  SamplingParams sampling;            // the model's defaults (generation_config.json) overridden by the request
  bool seeded = false;                // "seed" was given: choice i uses seed + i
  std::vector<std::string> stop;
  std::vector<int32_t> stop_ids;      // "stop_token_ids" (vLLM extension)
  bool ignore_eos = false;            // vLLM extension
  bool skip_special_tokens = true;    // vLLM extension
  int64_t n = 1;
  bool stream = false, include_usage = false;
  bool return_token_ids = false;      // vLLM extension: choices[].token_ids (and prompt_token_ids)
};

struct ValidationLimits {
  int64_t max_n = 16;           // choices per request (n x prompts)
  size_t max_stop = 16;         // stop strings
  size_t max_stop_bytes = 512;  // per stop string
};

// Reads the shared fields. `max_tokens_field` is "max_tokens" for completions; chat also reads
// "max_completion_tokens" (which wins when both are given).
GenerationParams parse_generation_params(const Fields& f, const SamplingParams& defaults, int64_t vocab, bool chat,
                                         const ValidationLimits& limits);

// Refuses fields we know and do not implement (a clear 400 instead of a silently different answer).
void refuse_unsupported(const Fields& f, bool chat, int64_t n);

// 404 unless `requested` is empty/absent, the served name or one of the aliases.
void check_model(const Fields& f, const std::string& served, const std::vector<std::string>& aliases);

// 400 when the prompt plus the completion do not fit in the context (OpenAI's message and code).
void check_context(int64_t prompt_tokens, int64_t max_tokens, int64_t context, const char* prompt_field);

}  // namespace mmfp4::server
