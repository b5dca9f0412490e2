// One generation request as Python sees it: a stream of TokenEvents, pulled one at a time (model.stream) or all at
// once (model.generate). Two sources give the same events for the same request:
//   - the engine (KV cache, batched with every other request in flight), for use_cache=True;
//   - a recomputation of the whole sequence from scratch for every new token through Engine::score, for
//     use_cache=False (what transformers does without a cache), with the same sampler, EOS, stop ids, stop
//     strings and streaming text as the engine's scheduler, so both give the same ids.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mmfp4/engine.h"

namespace mmfp4::python {

class Generation {
 public:
  virtual ~Generation() = default;
  // The next event; the last one has finished = true. Called with the GIL held: the GIL is released while the
  // engine computes, and pending signals are checked every 50 ms of waiting; on Ctrl-C the request is cancelled
  // and the KeyboardInterrupt propagates (pybind11::error_already_set).
  virtual TokenEvent next() = 0;
  // Ends the request early; the events that follow end with one whose reason is Cancelled. Thread-safe.
  virtual void cancel() = 0;
  bool finished() const { return finished_; }

 protected:
  bool finished_ = false;
};

// Everything a finished generation produced (Engine::generate's Result, without the timings).
struct Completion {
  std::vector<int32_t> ids;   // generated ids: EOS / stop ids excluded
  std::string text;
  FinishReason reason = FinishReason::None;
  std::string error;
  int64_t prompt_tokens = 0, cached_prompt_tokens = 0;
};

// Submits `r` to the engine (throws mmfp4::Error for a bad request, exactly as Engine::submit).
std::unique_ptr<Generation> start_cached(std::shared_ptr<Engine> engine, Request r);
// Validates `r` as Engine::submit does, then computes each token from the whole sequence, without a cache.
std::unique_ptr<Generation> start_recompute(std::shared_ptr<Engine> engine, Request r);

// Pulls events until the final one (GIL and signals as in Generation::next, and signals between events too).
Completion collect(Generation& g);

// Registers the Python classes _Generation, _Event and _Completion and the function _start.
void bind_generation(pybind11::module_& m);

}  // namespace mmfp4::python
