// Server metrics in the Prometheus text format (GET /metrics): HTTP responses by endpoint and status, finished
// engine requests by reason, prompt and generated tokens, the engine's queue depth, running requests, KV-cache
// blocks and preemptions, and latency histograms (time to first token, request duration).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mmfp4/engine.h"

namespace mmfp4::server {

// A cumulative histogram with fixed upper bounds (Prometheus "le" buckets; +Inf implied).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  // endpoint: a route path, or "other" for unknown paths (so garbage paths cannot grow the label set).
  // status 499 counts requests whose client went away before an answer.
  void count_response(const std::string& endpoint, int status);
  // One engine request ended (one choice of an HTTP request).
  void count_finished(FinishReason r, int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);
  void observe_time_to_first_token(double s) { ttft_.observe(s); }
  void observe_request_duration(double s) { duration_.observe(s); }
  int64_t finished(FinishReason r) const;

  // stats: null while the model is loading.
  std::string render(const EngineStats* stats, int open_connections) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> responses_;
  std::map<FinishReason, int64_t> finished_;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0, cached_tokens_ = 0;
  Histogram ttft_, duration_;
};

}  // namespace mmfp4::server
