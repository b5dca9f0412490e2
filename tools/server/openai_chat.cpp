// POST /v1/chat/completions: the messages are checked and normalised (text content parts joined), rendered with
// the model's chat template (Engine::apply_chat_template, plus "chat_template_kwargs" as vLLM takes them, e.g.
// {"enable_thinking": false}) and tokenized without adding special tokens (the template writes them).
#include "core/error.h"
#include "server/api_error.h"
#include "server/openai_endpoints.h"

namespace mmfp4::server {
namespace {

bool known_role(const std::string& r) {
  return r == "system" || r == "developer" || r == "user" || r == "assistant" || r == "tool" || r == "function";
}

// The messages as the template expects them: string content (a list of text parts is joined with newlines, as
// vLLM does; null becomes ""), every other field passed through.
json::Value normalise_messages(const json::Value* messages) {
  if (!messages) throw ApiError(400, "'messages' is required", "messages");
  if (!messages->is_array()) throw ApiError(400, "'messages' must be a list of message objects", "messages");
  if (messages->size() == 0) throw ApiError(400, "'messages' must not be empty", "messages");
  json::Value out = json::Value::array();
  for (size_t i = 0; i < messages->size(); ++i) {
    const json::Value& m = (*messages)[i];
    const std::string where = cat("messages[", i, "]");
    if (!m.is_object()) throw ApiError(400, cat(where, " must be an object"), "messages");
    const json::Value* role = m.find("role");
    if (!role || !role->is_string()) throw ApiError(400, cat(where, ".role must be a string"), "messages");
    if (!known_role(role->as_string()))
      throw ApiError(400, cat(where, ".role '", role->as_string(),
                              "' is not one of system, developer, user, assistant, tool, function"),
                     "messages");
    json::Value norm = json::Value::object();
    for (const auto& [k, v] : m.as_object()) {
      if (k != "content") {
        norm.set(k, v);
        continue;
      }
      if (v.is_null()) {
        norm.set(k, "");
      } else if (v.is_string()) {
        norm.set(k, v);
      } else if (v.is_array()) {
        std::string text;
        for (size_t j = 0; j < v.size(); ++j) {
          const json::Value& part = v[j];
          const json::Value* type = part.find("type");
          if (!part.is_object() || !type || !type->is_string())
            throw ApiError(400, cat(where, ".content[", j, "] must be an object with a 'type'"), "messages");
          if (type->as_string() != "text")
            throw ApiError(400, cat(where, ".content[", j, "] has type '", type->as_string(),
                                    "': only text content is supported"),
                           "messages");
          const json::Value* t = part.find("text");
          if (!t || !t->is_string())
            throw ApiError(400, cat(where, ".content[", j, "].text must be a string"), "messages");
          if (j) text += "\n";
          text += t->as_string();
        }
        norm.set(k, text);
      } else {
        throw ApiError(400, cat(where, ".content must be a string or a list of content parts"), "messages");
      }
    }
    if (!norm.find("content")) {
      if (role->as_string() != "assistant") throw ApiError(400, cat(where, ".content is required"), "messages");
      norm.set("content", "");
    }
    out.push_back(std::move(norm));
  }
  return out;
}

}  // namespace

void handle_chat_completions(const EndpointContext& ctx, const HttpRequest& req, HttpResponseWriter& w) {
  Engine& e = ctx.engine;
  const GenerationRequest r = read_generation_request(ctx, req, true);
  const GenerationParams& g = r.params;
  const Fields f(r.body);
  const bool logprobs = f.boolean("logprobs").value_or(false);
  const json::Value messages = normalise_messages(f.get("messages"));
  json::Value kwargs = json::Value::object();
  if (const json::Value* k = f.get("chat_template_kwargs")) {
    if (!k->is_object()) throw ApiError(400, "'chat_template_kwargs' must be an object", "chat_template_kwargs");
    kwargs = *k;
  }
  const bool add_generation_prompt = f.boolean("add_generation_prompt").value_or(true);
  if (!e.tokenizer()) throw ApiError(400, "this model has no tokenizer, so it cannot chat: use /v1/completions with token ids");
  std::vector<int32_t> prompt;
  try {
    const std::string text = e.apply_chat_template(json::dump(messages), add_generation_prompt, json::dump(kwargs));
    prompt = e.tokenize(text, false);
  } catch (const Error& ex) {
    throw ApiError(400, cat("the chat template could not be applied: ", ex.what()), "messages");
  }
  if (prompt.empty()) throw ApiError(400, "the chat template produced an empty prompt", "messages");
  // As vLLM: without max_tokens the completion may use the rest of the context.
  const int64_t ctx_len = e.max_context();
  const int64_t max_tokens = g.max_tokens.value_or(std::max<int64_t>(1, ctx_len - int64_t(prompt.size())));
  check_context(int64_t(prompt.size()), max_tokens, ctx_len, "messages");

  ResponseShape shape;
  shape.chat = true;
  shape.logprobs = logprobs;
  shape.prompts.push_back(std::move(prompt));
  shape.echo.push_back("");
  shape.prompt_of_choice.assign(size_t(g.n), 0);
  run_generation(ctx, w, shape, g, max_tokens);
}

}  // namespace mmfp4::server
