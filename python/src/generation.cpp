#include "generation.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "core/error.h"
#include "gil.h"
#include "engine/stop_matcher.h"
#include "model/config.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace py = pybind11;

namespace mmfp4::python {
namespace {

// How often a thread waiting for the engine takes the GIL back to look for Ctrl-C.
constexpr auto kSignalPoll = std::chrono::milliseconds(50);

// Events from the engine thread to the Python thread. The engine's callback only touches this queue (never
// Python), and owns it jointly with the generation, so either may outlive the other.
struct EventQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<TokenEvent> events;
};

class CachedGeneration final : public Generation {
 public:
  CachedGeneration(std::shared_ptr<Engine> engine, Request r)
      : engine_(std::move(engine)), queue_(std::make_shared<EventQueue>()) {
    id_ = engine_->submit(std::move(r), [q = queue_](const TokenEvent& ev) {
      {
        std::lock_guard<std::mutex> lock(q->mu);
        q->events.push_back(ev);
      }
      q->cv.notify_one();
    });
  }
  // A stream dropped half way (a `break` out of the loop, an exception) frees its batch slot and KV blocks.
  ~CachedGeneration() override {
    if (!finished_) engine_->cancel(id_);
  }

  TokenEvent next() override {
    if (finished_) fail("this generation has already finished");
    while (true) {
      {
        ReleasedGil nogil;
        std::unique_lock<std::mutex> lock(queue_->mu);
        if (queue_->cv.wait_for(lock, kSignalPoll, [&] { return !queue_->events.empty(); })) {
          TokenEvent ev = std::move(queue_->events.front());
          queue_->events.pop_front();
          finished_ = ev.finished;
          return ev;
        }
      }
      if (PyErr_CheckSignals() != 0) {
        cancel();
        throw py::error_already_set();
      }
    }
  }

  void cancel() override { engine_->cancel(id_); }

 private:
  std::shared_ptr<Engine> engine_;
  std::shared_ptr<EventQueue> queue_;
  uint64_t id_ = 0;
};

class RecomputeGeneration final : public Generation {
 public:
  RecomputeGeneration(std::shared_ptr<Engine> engine, Request r)
      : engine_(std::move(engine)), req_(std::move(r)), vocab_(engine_->config().vocab_size) {
    // The checks (and messages) of Engine::submit.
    const int64_t ctx = engine_->max_context();
    if (req_.prompt.empty()) fail("the prompt is empty");
    for (size_t i = 0; i < req_.prompt.size(); ++i)
      if (req_.prompt[i] < 0 || req_.prompt[i] >= vocab_)
        fail("prompt token ", i, " has id ", req_.prompt[i], ", outside the vocabulary [0, ", vocab_, ")");
    if (req_.max_new_tokens < 0) fail("max_new_tokens must not be negative");
    if (int64_t(req_.prompt.size()) + req_.max_new_tokens > ctx)
      fail("prompt (", req_.prompt.size(), " tokens) + max_new_tokens (", req_.max_new_tokens,
           ") exceeds the context of ", ctx, " tokens");
    req_.sampling.validate();
    const Tokenizer* tok = engine_->tokenizer();
    if (!req_.stop.empty() && !tok) fail("stop strings need a tokenizer, and this model folder has none");
    tokens_ = req_.prompt;
    eos_ = engine_->eos_ids();
    sampler_ = std::make_unique<Sampler>(req_.sampling, vocab_);
    if (tok) decoder_ = std::make_unique<StreamDecoder>(*tok, req_.skip_special_tokens);
    stop_ = StopMatcher(req_.stop);
    if (req_.max_new_tokens == 0) reason_ = FinishReason::Length;  // nothing to compute
  }

  TokenEvent next() override {
    if (finished_) fail("this generation has already finished");
    if (reason_ == FinishReason::None && cancelled_) reason_ = FinishReason::Cancelled;
    if (reason_ != FinishReason::None) return final_event();
    if (PyErr_CheckSignals() != 0) {
      reason_ = FinishReason::Cancelled;
      throw py::error_already_set();
    }
    std::vector<float> logits;
    {
      ReleasedGil nogil;
      logits = engine_->score({tokens_});
    }
    // The same decisions, in the same order, as the engine's scheduler step (src/engine/engine.cpp).
    float* last = logits.data() + (tokens_.size() - 1) * size_t(vocab_);
    TokenEvent ev;
    ev.token = sampler_->sample(last, tokens_);
    tokens_.push_back(ev.token);
    const bool is_eos = !req_.ignore_eos && std::find(eos_.begin(), eos_.end(), ev.token) != eos_.end();
    const bool is_stop_id =
        std::find(req_.stop_ids.begin(), req_.stop_ids.end(), ev.token) != req_.stop_ids.end();
    if (is_eos || is_stop_id) {
      reason_ = FinishReason::Stop;  // the stop token is not part of the completion, and is not streamed
      return final_event();
    }
    ++n_generated_;
    if (decoder_) {
      bool stopped = false;
      ev.text = stop_.push(decoder_->push(ev.token), &stopped);
      if (stopped) {
        reason_ = FinishReason::Stop;
        stop_string_hit_ = true;
      }
    }
    if (reason_ == FinishReason::None && n_generated_ >= req_.max_new_tokens) reason_ = FinishReason::Length;
    return ev;
  }

  void cancel() override { cancelled_ = true; }

 private:
  TokenEvent final_event() {
    TokenEvent ev;
    ev.finished = true;
    ev.reason = reason_;
    if (decoder_ && !stop_string_hit_) {  // text held back (a partial character or stop string) comes out now
      bool stopped = false;
      ev.text = stop_.push(decoder_->flush(), &stopped);
      if (!stopped) ev.text += stop_.flush();
    }
    ev.prompt_tokens = int64_t(req_.prompt.size());
    ev.completion_tokens = n_generated_;
    finished_ = true;
    return ev;
  }

  std::shared_ptr<Engine> engine_;
  Request req_;
  int64_t vocab_;
  std::vector<int32_t> tokens_, eos_;  // prompt + generated
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<StreamDecoder> decoder_;
  StopMatcher stop_;
  FinishReason reason_ = FinishReason::None;
  bool stop_string_hit_ = false;
  int64_t n_generated_ = 0;
  std::atomic<bool> cancelled_{false};
};

std::vector<int32_t> to_ids(const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& a) {
  if (a.ndim() != 1) fail("a prompt must be 1-D token ids, got ", a.ndim(), " dimensions");
  return std::vector<int32_t>(a.data(), a.data() + a.size());
}

}  // namespace

std::unique_ptr<Generation> start_cached(std::shared_ptr<Engine> engine, Request r) {
  return std::make_unique<CachedGeneration>(std::move(engine), std::move(r));
}

std::unique_ptr<Generation> start_recompute(std::shared_ptr<Engine> engine, Request r) {
  return std::make_unique<RecomputeGeneration>(std::move(engine), std::move(r));
}

Completion collect(Generation& g) {
  Completion c;
  while (true) {
    TokenEvent ev = g.next();
    // next() looks for Ctrl-C only while it waits; tokens may come faster than that, so look between them too.
    if (!ev.finished && PyErr_CheckSignals() != 0) {
      g.cancel();
      throw py::error_already_set();
    }
    if (ev.token >= 0) c.ids.push_back(ev.token);
    c.text += ev.text;
    if (ev.finished) {
      c.reason = ev.reason;
      c.error = ev.error;
      c.prompt_tokens = ev.prompt_tokens;
      c.cached_prompt_tokens = ev.cached_prompt_tokens;
      if (int64_t(c.ids.size()) > ev.completion_tokens) c.ids.resize(size_t(ev.completion_tokens));
      return c;
    }
  }
}

void bind_generation(py::module_& m) {
  py::class_<SamplingParams>(m, "_SamplingParams", "SamplingParams of include/mmfp4/sampling.h")
      .def(py::init<>())
      .def_readwrite("temperature", &SamplingParams::temperature)
      .def_readwrite("top_k", &SamplingParams::top_k)
      .def_readwrite("top_p", &SamplingParams::top_p)
      .def_readwrite("min_p", &SamplingParams::min_p)
      .def_readwrite("repetition_penalty", &SamplingParams::repetition_penalty)
      .def_readwrite("presence_penalty", &SamplingParams::presence_penalty)
      .def_readwrite("frequency_penalty", &SamplingParams::frequency_penalty)
      .def_readwrite("seed", &SamplingParams::seed);

  // Request without its prompt: the prompt travels as a NumPy array (see _start).
  py::class_<Request>(m, "_Request", "Request of include/mmfp4/engine.h")
      .def(py::init<>())
      .def_readwrite("max_new_tokens", &Request::max_new_tokens)
      .def_readwrite("sampling", &Request::sampling)
      .def_readwrite("stop", &Request::stop)
      .def_readwrite("stop_ids", &Request::stop_ids)
      .def_readwrite("ignore_eos", &Request::ignore_eos)
      .def_readwrite("skip_special_tokens", &Request::skip_special_tokens);

  py::class_<TokenEvent>(m, "_Event")
      .def_readonly("token", &TokenEvent::token)
      .def_readonly("text", &TokenEvent::text)
      .def_readonly("finished", &TokenEvent::finished)
      .def_property_readonly("reason", [](const TokenEvent& e) { return finish_reason_name(e.reason); })
      .def_readonly("error", &TokenEvent::error);

  py::class_<Completion>(m, "_Completion")
      .def_readonly("ids", &Completion::ids)
      .def_readonly("text", &Completion::text)
      .def_property_readonly("reason", [](const Completion& c) { return finish_reason_name(c.reason); })
      .def_readonly("error", &Completion::error)
      .def_readonly("prompt_tokens", &Completion::prompt_tokens)
      .def_readonly("cached_prompt_tokens", &Completion::cached_prompt_tokens);

  py::class_<Generation>(m, "_Generation")
      .def("next", &Generation::next)
      .def("collect", &collect)
      .def("cancel", &Generation::cancel)
      .def_property_readonly("finished", &Generation::finished);

  m.def(
      "_start",
      [](std::shared_ptr<Engine> engine, const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& prompt,
         Request r, bool use_cache) {
        r.prompt = to_ids(prompt);
        return use_cache ? start_cached(std::move(engine), std::move(r))
                         : start_recompute(std::move(engine), std::move(r));
      },
      py::arg("engine"), py::arg("prompt"), py::arg("request"), py::arg("use_cache"),
      "Starts generating: with the engine's KV cache, or recomputing the whole sequence for every token.");
}

}  // namespace mmfp4::python
