// The answer to a generation request, in the shapes of the OpenAI API reference, for both endpoints:
//   completions: {"id": "cmpl-..", "object": "text_completion", "created", "model",
//                 "choices": [{"index", "text", "logprobs", "finish_reason"}], "usage"}
//   chat:        {"id": "chatcmpl-..", "object": "chat.completion", ..., "choices": [{"index",
//                 "message": {"role": "assistant", "content"}, "logprobs", "finish_reason"}], "usage"}
// streamed as "chat.completion.chunk" / "text_completion" chunks with "delta" / "text" pieces, a last chunk per
// choice carrying its finish_reason, an optional usage chunk (stream_options.include_usage) and "data: [DONE]".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mmfp4/engine.h"
#include "server/generation.h"
#include "server/http_response.h"
#include "server/request_validation.h"

namespace mmfp4::server {

struct ResponseShape {
  bool chat = false;
  std::string id;        // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;   // Unix seconds
  std::string model;
  bool logprobs = false;
  std::vector<size_t> prompt_of_choice;  // choice -> prompt index (usage counts each prompt once)
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> echo;         // per prompt: text put before each of its choices ("" = none)
};

// Waits for the run and answers: one JSON object, or an event stream when params.stream.
void respond(GenerationRun& run, Engine& engine, HttpResponseWriter& w, const ResponseShape& shape,
             const GenerationParams& params);

// "cmpl-" + 24 random hex digits.
std::string new_response_id(const char* prefix);
int64_t unix_time();

}  // namespace mmfp4::server
