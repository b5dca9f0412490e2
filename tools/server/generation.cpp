#include "server/generation.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "core/error.h"
#include "core/log.h"
#include "server/api_error.h"

namespace mmfp4::server {
namespace {

uint64_t random_seed() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  return rng();
}

}  // namespace


struct GenerationRun::Shared {
  std::mutex mu;
  std::vector<ChoiceEvent> events;
  int efd = -1;  // readable while events are queued
  bool wake_each_token = true;
  ~Shared() {
    if (efd >= 0) ::close(efd);
  }
};

GenerationRun::GenerationRun(Engine& engine, ServerMetrics& metrics, int client_fd, double t_arrival,
                             bool wake_each_token)
    : engine_(engine), metrics_(metrics), client_fd_(client_fd), t_arrival_(t_arrival), sh_(std::make_shared<Shared>()) {
  sh_->wake_each_token = wake_each_token;
  sh_->efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (sh_->efd < 0) throw ApiError(500, cat("eventfd: ", std::strerror(errno)));
}

GenerationRun::~GenerationRun() {
  if (n_finished_ < ids_.size()) {
    try {
      cancel_all();
      wait_finished();
    } catch (const std::exception& e) {
      // Only a failing poll() gets here; the callbacks keep the shared queue alive, so nothing dangles.
      log_warn("server: abandoning a cancelled generation: ", e.what());
    }
  }
}

void GenerationRun::submit(std::vector<Request> requests) {
  for (size_t i = 0; i < requests.size(); ++i) {
    std::shared_ptr<Shared> sh = sh_;
    try {
      ids_.push_back(engine_.submit(std::move(requests[i]), [sh, i](const TokenEvent& ev) {
        {
          std::lock_guard<std::mutex> lock(sh->mu);
          sh->events.push_back({i, ev, now_seconds()});
        }
        if (!sh->wake_each_token && !ev.finished) return;
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(sh->efd, &one, sizeof one);
      }));
      finished_.push_back(false);
      got_first_.push_back(false);
    } catch (const QueueFull&) {
      throw ApiError(429, "the server is busy: the request queue is full; retry later", "", "queue_full");
    } catch (const Error& e) {
      throw ApiError(400, e.what());
    }
  }
}

void GenerationRun::cancel_all() {
  if (cancelled_) return;
  cancelled_ = true;
  for (size_t i = 0; i < ids_.size(); ++i)
    if (!finished_[i]) engine_.cancel(ids_[i]);
}

void GenerationRun::record(const ChoiceEvent& ce) {
  const TokenEvent& ev = ce.ev;
  if (ev.token >= 0 && !got_first_[ce.choice]) {
    got_first_[ce.choice] = true;
    metrics_.observe_time_to_first_token(ce.t - t_arrival_);
  }
  if (ev.finished && !finished_[ce.choice]) {
    finished_[ce.choice] = true;
    ++n_finished_;
    metrics_.observe_request_duration(ce.t - t_arrival_);
    metrics_.count_finished(ev.reason, ev.prompt_tokens, ev.completion_tokens, ev.cached_prompt_tokens);
  }
}

void GenerationRun::wait_finished() {
  // After a cancel the engine ends each request at its next step; the events still count for the metrics.
  run([](const std::vector<ChoiceEvent>&) { return true; });
}

bool GenerationRun::run(const std::function<bool(const std::vector<ChoiceEvent>&)>& on_events) {
  std::vector<ChoiceEvent> batch;
  while (n_finished_ < ids_.size()) {
    pollfd p[2] = {{sh_->efd, POLLIN, 0}, {client_fd_, POLLRDHUP, 0}};
    const int watch = client_fd_ >= 0 && !cancelled_ ? 2 : 1;
    const int r = ::poll(p, nfds_t(watch), 1000);
    if (r < 0 && errno != EINTR) throw ApiError(500, cat("poll: ", std::strerror(errno)));
    if (watch == 2 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
      // The client closed its side (or the server is stopping): nobody will read the answer.
      client_gone_ = true;
      cancel_all();
    }
    uint64_t v;
    [[maybe_unused]] ssize_t n = ::read(sh_->efd, &v, sizeof v);
    batch.clear();
    {
      std::lock_guard<std::mutex> lock(sh_->mu);
      batch.swap(sh_->events);
    }
    if (batch.empty()) continue;
    for (const auto& ce : batch) record(ce);
    if (!cancelled_ && !on_events(batch)) {
      client_gone_ = true;
      cancel_all();
    }
  }
  return !client_gone_;
}

std::vector<Request> make_requests(const GenerationParams& g, const std::vector<std::vector<int32_t>>& prompts,
                                   int64_t max_tokens, bool logprobs) {
  std::vector<Request> out;
  for (const auto& prompt : prompts) {
    for (int64_t j = 0; j < g.n; ++j) {
      Request r;
      r.prompt = prompt;
      r.max_new_tokens = max_tokens;
      r.sampling = g.sampling;
      r.sampling.seed = g.seeded ? g.sampling.seed + uint64_t(out.size()) : random_seed();
      r.stop = g.stop;
      r.stop_ids = g.stop_ids;
      r.ignore_eos = g.ignore_eos;
      r.skip_special_tokens = g.skip_special_tokens;
      r.logprobs = logprobs;
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace mmfp4::server
