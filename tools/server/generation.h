// Runs the engine requests of one HTTP request (one per choice: n x prompts) and hands their events to the
// connection's thread, watching the client meanwhile: if its socket closes (or a write to it fails) every request
// is cancelled at once, whether the response is streamed or not. Events arrive on the engine thread; the
// callback only queues them and signals an eventfd, so the engine never waits on a slow client.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "mmfp4/engine.h"
#include "server/metrics.h"
#include "server/request_validation.h"

namespace mmfp4::server {

struct ChoiceEvent {
  size_t choice;
  TokenEvent ev;
  double t = 0;  // now_seconds() when the engine produced it (latency metrics do not wait for the connection thread)
};

class GenerationRun {
 public:
  // client_fd: the connection to watch for a hang-up (-1: none). t_arrival: now_seconds() when the HTTP request
  // arrived (latency metrics start there). wake_each_token: wake the connection thread for every token (streaming);
  // otherwise only when a choice finishes, which spares a non-streamed request a context switch per token.
  GenerationRun(Engine& engine, ServerMetrics& metrics, int client_fd, double t_arrival, bool wake_each_token);
  ~GenerationRun();  // cancels what is still running and waits for it
  GenerationRun(const GenerationRun&) = delete;
  GenerationRun& operator=(const GenerationRun&) = delete;

  // Submits one engine request per choice, in order. On QueueFull (-> ApiError 429) or a refused request
  // (mmfp4::Error -> ApiError 400) the ones already submitted are cancelled.
  void submit(std::vector<Request> requests);

  // Delivers events in batches (everything that arrived since the last call) until every choice has finished.
  // on_events returns false when it could not write to the client: everything is cancelled. Returns false when
  // the run was cancelled because the client went away.
  bool run(const std::function<bool(const std::vector<ChoiceEvent>&)>& on_events);
  bool client_gone() const { return client_gone_; }

 private:
  struct Shared;
  void cancel_all();
  void wait_finished();
  void record(const ChoiceEvent& ce);

  Engine& engine_;
  ServerMetrics& metrics_;
  int client_fd_;
  double t_arrival_;
  std::shared_ptr<Shared> sh_;
  std::vector<uint64_t> ids_;
  std::vector<bool> finished_, got_first_;
  size_t n_finished_ = 0;
  bool client_gone_ = false, cancelled_ = false;
};

// One engine request per choice (n per prompt, in prompt order) from the shared parameters. Choice i of a seeded
// request uses seed + i; an unseeded request gets a fresh random seed per choice.
std::vector<Request> make_requests(const GenerationParams& g, const std::vector<std::vector<int32_t>>& prompts,
                                   int64_t max_tokens, bool logprobs);

}  // namespace mmfp4::server
