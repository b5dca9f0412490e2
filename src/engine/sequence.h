// A request inside the engine: its tokens, its slice of the KV cache, its sampler and text decoder.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/stop_matcher.h"
#include "kv/kv_cache.h"
#include "mmfp4/engine.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace mmfp4 {

struct Sequence {
  uint64_t id = 0;
  Request req;
  TokenCallback cb;
  std::vector<int32_t> tokens;   // prompt + generated
  int64_t n_prompt = 0;
  int64_t n_generated = 0;
  SeqCache cache;                // blocks holding tokens [0, cache.length)
  int64_t registered_blocks = 0; // blocks offered to the prefix cache
  int64_t cached_prompt = 0;     // prompt tokens reused from the prefix cache (first admission)
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<StreamDecoder> decoder;
  StopMatcher stop;
  bool stop_string_hit = false;
  bool admitted_once = false;
  double t_submit = 0, t_admit = 0, t_first = 0;

  // Tokens whose KV is not in the cache yet (the prompt during prefill; 1 while decoding).
  int64_t pending() const { return int64_t(tokens.size()) - cache.length; }
};

}  // namespace mmfp4
