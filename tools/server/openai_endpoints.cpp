#include "server/openai_endpoints.h"

#include "model/config.h"
#include "server/generation.h"

namespace mmfp4::server {

GenerationRequest read_generation_request(const EndpointContext& ctx, const HttpRequest& req, bool chat) {
  GenerationRequest r;
  r.body = parse_body(req.body);
  const Fields f(r.body);
  check_model(f, ctx.model, ctx.aliases);
  r.params = parse_generation_params(f, ctx.defaults, ctx.engine.config().vocab_size, chat, ctx.limits);
  refuse_unsupported(f, chat, r.params.n);
  return r;
}

void run_generation(const EndpointContext& ctx, HttpResponseWriter& w, ResponseShape& shape,
                    const GenerationParams& params, int64_t max_tokens) {
  shape.id = new_response_id(shape.chat ? "chatcmpl-" : "cmpl-");
  shape.created = unix_time();
  shape.model = ctx.model;
  GenerationRun run(ctx.engine, ctx.metrics, w.socket(), ctx.t_arrival, params.stream);
  run.submit(make_requests(params, shape.prompts, max_tokens, shape.logprobs));
  respond(run, ctx.engine, w, shape, params);
}

}  // namespace mmfp4::server
