// The generation endpoints: POST /v1/completions and POST /v1/chat/completions. Each reads and validates its
// body (ApiError 400/404 on a bad request), builds one engine request per choice, and answers through
// openai_response (whole or streamed). They run on the connection's thread and return when the answer is sent
// or the client is gone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mmfp4/engine.h"
#include "server/http_message.h"
#include "server/http_response.h"
#include "server/metrics.h"
#include "server/request_validation.h"

namespace mmfp4::server {

struct EndpointContext {
  Engine& engine;
  ServerMetrics& metrics;
  const std::string& model;                  // the served name
  const std::vector<std::string>& aliases;   // other accepted names
  const ValidationLimits& limits;
  const SamplingParams& defaults;            // for sampling fields the request leaves out
  double t_arrival;                          // now_seconds() when the request was read
};

void handle_completions(const EndpointContext& ctx, const HttpRequest& req, HttpResponseWriter& w);
void handle_chat_completions(const EndpointContext& ctx, const HttpRequest& req, HttpResponseWriter& w);

}  // namespace mmfp4::server
