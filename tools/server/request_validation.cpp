#include "server/request_validation.h"

#include <cmath>

#include "core/error.h"
#include "server/api_error.h"

namespace mmfp4::server {

json::Value parse_body(std::string_view body) {
  if (body.empty()) throw ApiError(400, "the request body is empty (a JSON object was expected)");
  json::Value v;
  try {
    json::ParseOptions po;
    po.max_depth = 64;  // requests are shallow; a deep one is an attack
    v = json::parse(body, "request body", po);
  } catch (const Error& e) {
    throw ApiError(400, cat("invalid JSON: ", e.what()));
  }
  if (!v.is_object())
    throw ApiError(400, cat("the request body must be a JSON object, not ", json::Value::type_name(v.type())));
  return v;
}

const json::Value* Fields::get(std::string_view name) const {
  const json::Value* v = obj_.find(name);
  return v && !v->is_null() ? v : nullptr;
}

std::optional<int64_t> as_integer(const json::Value& v) {
  if (v.is_int()) return v.as_int();
  if (v.type() == json::Type::Double) {
    const double d = v.as_double();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e18) return int64_t(d);
  }
  return std::nullopt;
}

std::optional<bool> Fields::boolean(std::string_view name) const {
  const json::Value* v = get(name);
  if (!v) return std::nullopt;
  if (!v->is_bool())
    throw ApiError(400, cat("'", name, "' must be a boolean, not ", json::Value::type_name(v->type())), std::string(name));
  return v->as_bool();
}

std::optional<int64_t> Fields::integer(std::string_view name, int64_t lo, int64_t hi) const {
  const json::Value* v = get(name);
  if (!v) return std::nullopt;
  const auto i = as_integer(*v);
  if (!i) {
    const std::string what = v->is_number() ? "a fractional number" : json::Value::type_name(v->type());
    throw ApiError(400, cat("'", name, "' must be an integer, not ", what), std::string(name));
  }
  if (*i < lo || *i > hi)
    throw ApiError(400, cat("'", name, "' must be in [", lo, ", ", hi, "], got ", *i), std::string(name));
  return i;
}

std::optional<double> Fields::number(std::string_view name, double lo, double hi, bool lo_open) const {
  const json::Value* v = get(name);
  if (!v) return std::nullopt;
  if (!v->is_number())
    throw ApiError(400, cat("'", name, "' must be a number, not ", json::Value::type_name(v->type())), std::string(name));
  const double d = v->as_double();
  if (!std::isfinite(d) || d < lo || d > hi || (lo_open && d == lo))
    throw ApiError(400, cat("'", name, "' must be in ", lo_open ? "(" : "[", json::format_double(lo, false), ", ",
                            json::format_double(hi, false), "], got ", json::format_double(d, false)),
                   std::string(name));
  return d;
}

std::optional<std::string> Fields::string(std::string_view name) const {
  const json::Value* v = get(name);
  if (!v) return std::nullopt;
  if (!v->is_string())
    throw ApiError(400, cat("'", name, "' must be a string, not ", json::Value::type_name(v->type())), std::string(name));
  return v->as_string();
}

GenerationParams parse_generation_params(const Fields& f, const SamplingParams& defaults, int64_t vocab, bool chat,
                                         const ValidationLimits& limits) {
  GenerationParams g;
  g.max_tokens = f.integer("max_tokens", 1, INT32_MAX);
  if (chat) {
    if (auto m = f.integer("max_completion_tokens", 1, INT32_MAX)) g.max_tokens = m;
  }
  SamplingParams& s = g.sampling;
  s = defaults;
  if (auto v = f.number("temperature", 0, 2)) s.temperature = float(*v);
  if (auto v = f.number("top_p", 0, 1, /*lo_open=*/true)) s.top_p = float(*v);
  // top_k: vLLM's -1 and 0 both mean "off".
  if (auto v = f.integer("top_k", -1, INT32_MAX)) s.top_k = int32_t(*v < 0 ? 0 : *v);
  if (auto v = f.number("min_p", 0, 1)) s.min_p = float(*v);
  if (auto v = f.number("presence_penalty", -2, 2)) s.presence_penalty = float(*v);
  if (auto v = f.number("frequency_penalty", -2, 2)) s.frequency_penalty = float(*v);
  if (auto v = f.number("repetition_penalty", 0, 10, /*lo_open=*/true)) s.repetition_penalty = float(*v);
  if (auto v = f.integer("seed", INT64_MIN, INT64_MAX)) {
    s.seed = uint64_t(*v);
    g.seeded = true;
  }
  g.n = f.integer("n", 1, limits.max_n).value_or(1);

  if (const json::Value* stop = f.get("stop")) {
    if (stop->is_string()) {
      g.stop.push_back(stop->as_string());
    } else if (stop->is_array()) {
      for (const auto& x : stop->as_array()) {
        if (!x.is_string()) throw ApiError(400, "'stop' must be a string or a list of strings", "stop");
        g.stop.push_back(x.as_string());
      }
    } else {
      throw ApiError(400, "'stop' must be a string or a list of strings", "stop");
    }
    if (g.stop.size() > limits.max_stop)
      throw ApiError(400, cat("'stop' has ", g.stop.size(), " strings; at most ", limits.max_stop, " are accepted"), "stop");
    for (const auto& x : g.stop) {
      if (x.empty()) throw ApiError(400, "'stop' strings must not be empty", "stop");
      if (x.size() > limits.max_stop_bytes)
        throw ApiError(400, cat("'stop' strings must be at most ", limits.max_stop_bytes, " bytes"), "stop");
    }
  }
  if (const json::Value* ids = f.get("stop_token_ids")) {
    if (!ids->is_array() || ids->size() > 1024)
      throw ApiError(400, "'stop_token_ids' must be a list of at most 1024 token ids", "stop_token_ids");
    for (const auto& x : ids->as_array()) {
      const auto id = as_integer(x);
      if (!id || *id < 0 || *id >= vocab)
        throw ApiError(400, cat("'stop_token_ids' entries must be token ids in [0, ", vocab, ")"), "stop_token_ids");
      g.stop_ids.push_back(int32_t(*id));
    }
  }
  g.ignore_eos = f.boolean("ignore_eos").value_or(false);
  g.skip_special_tokens = f.boolean("skip_special_tokens").value_or(true);
  g.return_token_ids = f.boolean("return_token_ids").value_or(false);
  g.stream = f.boolean("stream").value_or(false);
  if (const json::Value* so = f.get("stream_options")) {
    if (!g.stream) throw ApiError(400, "'stream_options' is only allowed when 'stream' is true", "stream_options");
    if (!so->is_object()) throw ApiError(400, "'stream_options' must be an object", "stream_options");
    Fields sf(*so);
    g.include_usage = sf.boolean("include_usage").value_or(false);
  }
  return g;
}

void refuse_unsupported(const Fields& f, bool chat, int64_t n) {
  auto no = [](const char* field, const std::string& why) { throw ApiError(400, why, field); };
  if (const json::Value* v = f.get("logit_bias"); v && v->size() > 0) no("logit_bias", "'logit_bias' is not supported");
  if (const json::Value* v = f.get("tools"); v && v->size() > 0) no("tools", "tool calling ('tools') is not supported");
  if (const json::Value* v = f.get("functions"); v && v->size() > 0)
    no("functions", "function calling ('functions') is not supported");
  if (const json::Value* v = f.get("tool_choice"); v && !(v->is_string() && v->as_string() == "none") &&
                                                    !(v->is_string() && v->as_string() == "auto"))
    no("tool_choice", "'tool_choice' is not supported (tool calling is not)");
  if (const json::Value* v = f.get("response_format")) {
    const json::Value* t = v->find("type");
    if (!v->is_object() || !t || !t->is_string() || t->as_string() != "text")
      no("response_format", "only 'response_format': {\"type\": \"text\"} is supported (no JSON mode or schemas)");
  }
  if (f.integer("min_tokens", 0, INT32_MAX).value_or(0) > 0) no("min_tokens", "'min_tokens' is not supported");
  if (f.boolean("use_beam_search").value_or(false)) no("use_beam_search", "beam search is not supported");
  if (chat) {
    if (f.integer("top_logprobs", 0, 20).value_or(0) > 0)
      no("top_logprobs", "'top_logprobs' > 0 is not supported: 'logprobs': true gives the sampled token's log-probability");
    if (const json::Value* a = f.get("audio")) (void)a, no("audio", "audio output is not supported");
  } else {
    if (auto s = f.string("suffix"); s && !s->empty()) no("suffix", "'suffix' (insertion) is not supported");
    if (auto b = f.integer("best_of", 1, 64); b && *b != n)
      no("best_of", "'best_of' other than n is not supported");
  }
}

void check_model(const Fields& f, const std::string& served, const std::vector<std::string>& aliases) {
  const auto m = f.string("model");
  if (!m || m->empty() || *m == served) return;
  for (const auto& a : aliases)
    if (*m == a) return;
  throw ApiError(404, cat("The model '", *m, "' does not exist (this server serves '", served, "')"), "model",
                 "model_not_found");
}

void check_context(int64_t prompt_tokens, int64_t max_tokens, int64_t context, const char* prompt_field) {
  if (prompt_tokens >= context)
    throw ApiError(400,
                   cat("This model's maximum context length is ", context, " tokens. However, your ", prompt_field,
                       " has ", prompt_tokens, " tokens, leaving no room for the completion. Please reduce the length of the ",
                       prompt_field, "."),
                   prompt_field, "context_length_exceeded");
  if (prompt_tokens + max_tokens > context)
    throw ApiError(400,
                   cat("This model's maximum context length is ", context, " tokens. However, you requested ",
                       prompt_tokens + max_tokens, " tokens (", prompt_tokens, " in the ", prompt_field, ", ", max_tokens,
                       " in the completion). Please reduce the length of the ", prompt_field, " or completion."),
                   "max_tokens", "context_length_exceeded");
}

}  // namespace mmfp4::server
