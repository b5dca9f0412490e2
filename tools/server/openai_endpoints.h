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
#include "server/openai_response.h"
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

// The steps both endpoints share (openai_endpoints.cpp).
struct GenerationRequest {
  json::Value body;         // read the endpoint's own fields with Fields(body)
  GenerationParams params;  // the shared fields, checked; unsupported fields refused
};
GenerationRequest read_generation_request(const EndpointContext& ctx, const HttpRequest& req, bool chat);
// Fills the shape's id, created and model, submits one engine request per choice (shape.prompts x params.n),
// and answers, whole or streamed, once they end or the client is gone.
void run_generation(const EndpointContext& ctx, HttpResponseWriter& w, ResponseShape& shape,
                    const GenerationParams& params, int64_t max_tokens);

}  // namespace mmfp4::server
