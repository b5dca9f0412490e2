// POST /v1/completions: "prompt" is a string, a list of token ids, or a list of either (a batch; each prompt gets
// n choices, indexed prompt * n + j as OpenAI does). Token-id prompts need no tokenizer.
#include "core/error.h"
#include "model/config.h"
#include "server/api_error.h"
#include "server/openai_endpoints.h"

namespace mmfp4::server {
namespace {

struct Prompt {
  std::vector<int32_t> ids;
  std::string text;  // for echo
};

std::vector<int32_t> token_list(const json::Value& v, int64_t vocab) {
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const auto id = as_integer(v[i]);
    if (!id) throw ApiError(400, cat("'prompt' token ", i, " is not an integer"), "prompt");
    if (*id < 0 || *id >= vocab)
      throw ApiError(400, cat("'prompt' token ", i, " has id ", *id, ", outside the vocabulary [0, ", vocab, ")"),
                     "prompt");
    ids.push_back(int32_t(*id));
  }
  return ids;
}

std::vector<Prompt> read_prompts(const Fields& f, Engine& e, bool echo) {
  const int64_t vocab = e.config().vocab_size;
  const json::Value* p = f.get("prompt");
  if (!p) throw ApiError(400, "'prompt' is required", "prompt");
  auto from_text = [&](const std::string& s) {
    if (!e.tokenizer())
      throw ApiError(400, "this model has no tokenizer: send the prompt as a list of token ids", "prompt");
    try {
      return Prompt{e.tokenize(s, true), s};
    } catch (const Error& ex) {
      throw ApiError(400, cat("'prompt' cannot be tokenized: ", ex.what()), "prompt");
    }
  };
  auto from_ids = [&](const json::Value& v) {
    Prompt pr{token_list(v, vocab), ""};
    if (echo && e.tokenizer()) pr.text = e.detokenize(pr.ids, true);
    return pr;
  };
  std::vector<Prompt> out;
  if (p->is_string()) {
    out.push_back(from_text(p->as_string()));
  } else if (p->is_array()) {
    const auto& a = p->as_array();
    if (a.empty()) throw ApiError(400, "'prompt' must not be an empty list", "prompt");
    if (a[0].is_number()) {
      out.push_back(from_ids(*p));  // one prompt of token ids
    } else {
      for (const auto& x : a) {
        if (x.is_string()) out.push_back(from_text(x.as_string()));
        else if (x.is_array()) out.push_back(from_ids(x));
        else throw ApiError(400, "'prompt' must be a string, a list of token ids, or a list of those", "prompt");
      }
    }
  } else {
    throw ApiError(400, "'prompt' must be a string, a list of token ids, or a list of those", "prompt");
  }
  for (const auto& pr : out)
    if (pr.ids.empty()) throw ApiError(400, "'prompt' is empty (no tokens)", "prompt");
  return out;
}

}  // namespace

void handle_completions(const EndpointContext& ctx, const HttpRequest& req, HttpResponseWriter& w) {
  Engine& e = ctx.engine;
  const GenerationRequest r = read_generation_request(ctx, req, false);
  const GenerationParams& g = r.params;
  const Fields f(r.body);
  // Integer logprobs asks for that many alternatives besides the sampled token; only the sampled one is kept.
  const auto logprobs = f.integer("logprobs", 0, 20);
  if (logprobs && *logprobs > 0)
    throw ApiError(400,
                   "'logprobs' > 0 (top alternatives) is not supported: 'logprobs': 0 gives the sampled token's "
                   "log-probability",
                   "logprobs");
  const bool echo = f.boolean("echo").value_or(false);
  if (echo && logprobs)
    throw ApiError(400, "'echo' with 'logprobs' needs prompt log-probabilities, which are not supported", "echo");
  const std::vector<Prompt> prompts = read_prompts(f, e, echo);
  if (int64_t(prompts.size()) * g.n > ctx.limits.max_n)
    throw ApiError(400, cat("prompts x n = ", prompts.size() * size_t(g.n), " choices; at most ", ctx.limits.max_n,
                            " are accepted per request"),
                   "n");
  // OpenAI's default for the legacy endpoint is 16 tokens.
  const int64_t max_tokens = g.max_tokens.value_or(16);
  ResponseShape shape;
  shape.chat = false;
  shape.logprobs = logprobs.has_value();
  for (size_t p = 0; p < prompts.size(); ++p) {
    check_context(int64_t(prompts[p].ids.size()), max_tokens, e.max_context(), "prompt");
    shape.prompts.push_back(prompts[p].ids);
    shape.echo.push_back(echo ? prompts[p].text : "");
    for (int64_t j = 0; j < g.n; ++j) shape.prompt_of_choice.push_back(p);
  }
  run_generation(ctx, w, shape, g, max_tokens);
}

}  // namespace mmfp4::server
