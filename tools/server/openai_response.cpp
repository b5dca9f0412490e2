#include "server/openai_response.h"

#include <chrono>
#include <cmath>
#include <mutex>
#include <random>

#include "core/error.h"
#include "core/json.h"
#include "server/api_error.h"
#include "server/sse.h"

namespace mmfp4::server {
namespace {

// What one choice produced (so far, or within one batch of events).
struct ChoiceOutput {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<double> logprobs;
  bool finished = false;
  FinishReason reason = FinishReason::None;
  std::string error;
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;

  void add(const TokenEvent& ev, bool with_logprobs) {
    if (ev.token >= 0) {
      ids.push_back(ev.token);
      if (with_logprobs) logprobs.push_back(ev.logprob);
    }
    text += ev.text;
    if (ev.finished) {
      finished = true;
      reason = ev.reason;
      error = ev.error;
      prompt_tokens = ev.prompt_tokens;
      completion_tokens = ev.completion_tokens;
      cached_tokens = ev.cached_prompt_tokens;
    }
  }
};

json::Value null() { return json::Value(); }

json::Value finish_reason_json(FinishReason r) {
  if (r == FinishReason::Stop) return "stop";
  if (r == FinishReason::Length) return "length";
  return null();
}

// JSON has no -inf; OpenAI and vLLM report an impossible token as -9999.0.
double finite_logprob(double lp) { return std::isfinite(lp) ? lp : -9999.0; }

std::string token_text(const Engine& e, int32_t id) {
  if (!e.tokenizer()) return cat("token_id:", id);
  return e.detokenize({id}, false);
}

json::Value ids_json(const std::vector<int32_t>& ids) {
  json::Value a = json::Value::array();
  for (int32_t id : ids) a.push_back(id);
  return a;
}

// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": []}], "refusal": null}.
json::Value chat_logprobs(const Engine& e, const ChoiceOutput& c) {
  json::Value content = json::Value::array();
  for (size_t i = 0; i < c.logprobs.size() && i < c.ids.size(); ++i) {
    const std::string t = token_text(e, c.ids[i]);
    json::Value bytes = json::Value::array();
    for (unsigned char b : t) bytes.push_back(int(b));
    json::Value entry = json::Value::object();
    entry.set("token", t);
    entry.set("logprob", finite_logprob(c.logprobs[i]));
    entry.set("bytes", std::move(bytes));
    entry.set("top_logprobs", json::Value::array());
    content.push_back(std::move(entry));
  }
  json::Value lp = json::Value::object();
  lp.set("content", std::move(content));
  lp.set("refusal", null());
  return lp;
}

// Completions (legacy): {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}; with
// logprobs=0 the "top" list holds the sampled token only, as vLLM does. `offset` is where the first token's
// text starts in the choice's text; it advances.
json::Value completion_logprobs(const Engine& e, const ChoiceOutput& c, int64_t& offset) {
  json::Value tokens = json::Value::array(), lps = json::Value::array(), top = json::Value::array(),
              offs = json::Value::array();
  for (size_t i = 0; i < c.logprobs.size() && i < c.ids.size(); ++i) {
    const std::string t = token_text(e, c.ids[i]);
    const double lp = finite_logprob(c.logprobs[i]);
    tokens.push_back(t);
    lps.push_back(lp);
    json::Value m = json::Value::object();
    m.set(t, lp);
    top.push_back(std::move(m));
    offs.push_back(offset);
    offset += int64_t(t.size());
  }
  json::Value lp = json::Value::object();
  lp.set("tokens", std::move(tokens));
  lp.set("token_logprobs", std::move(lps));
  lp.set("top_logprobs", std::move(top));
  lp.set("text_offset", std::move(offs));
  return lp;
}

json::Value usage_json(const ResponseShape& shape, const std::vector<ChoiceOutput>& out) {
  int64_t prompt = 0, completion = 0, cached = 0;
  std::vector<bool> counted(shape.prompts.size(), false);
  for (size_t c = 0; c < out.size(); ++c) {
    completion += out[c].completion_tokens;
    const size_t p = shape.prompt_of_choice[c];
    if (!counted[p]) {
      counted[p] = true;
      prompt += int64_t(shape.prompts[p].size());
      cached += out[c].cached_tokens;
    }
  }
  json::Value u = json::Value::object();
  u.set("prompt_tokens", prompt);
  u.set("completion_tokens", completion);
  u.set("total_tokens", prompt + completion);
  json::Value details = json::Value::object();
  details.set("cached_tokens", cached);
  u.set("prompt_tokens_details", std::move(details));
  return u;
}

json::Value envelope(const ResponseShape& shape, bool chunk) {
  json::Value o = json::Value::object();
  o.set("id", shape.id);
  o.set("object", shape.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion");
  o.set("created", shape.created);
  o.set("model", shape.model);
  return o;
}

// A choice whose request ended in an error (or was cancelled by a shutdown) fails the whole response.
ApiError choice_error(const ChoiceOutput& c) {
  if (c.reason == FinishReason::Cancelled) return ApiError(503, "the server is shutting down", "", "shutting_down");
  return ApiError(500, cat("generation failed: ", c.error));
}

void respond_whole(GenerationRun& run, const Engine& e, HttpResponseWriter& w, const ResponseShape& shape,
                   const GenerationParams& params, std::vector<ChoiceOutput>& out) {
  if (!run.run([&](const std::vector<ChoiceEvent>& batch) {
        for (const auto& ce : batch) out[ce.choice].add(ce.ev, shape.logprobs);
        return true;
      }))
    return;  // the client is gone: nobody to answer
  json::Value choices = json::Value::array();
  for (size_t c = 0; c < out.size(); ++c) {
    ChoiceOutput& o = out[c];
    if (o.reason != FinishReason::Stop && o.reason != FinishReason::Length) throw choice_error(o);
    // Tokens that ended generation (EOS, a stop id) are not part of the completion.
    if (int64_t(o.ids.size()) > o.completion_tokens) o.ids.resize(size_t(o.completion_tokens));
    const size_t p = shape.prompt_of_choice[c];
    json::Value ch = json::Value::object();
    ch.set("index", int64_t(c));
    if (shape.chat) {
      json::Value msg = json::Value::object();
      msg.set("role", "assistant");
      msg.set("content", o.text);
      ch.set("message", std::move(msg));
      ch.set("logprobs", shape.logprobs ? chat_logprobs(e, o) : null());
    } else {
      ch.set("text", shape.echo[p] + o.text);
      int64_t offset = int64_t(shape.echo[p].size());
      ch.set("logprobs", shape.logprobs ? completion_logprobs(e, o, offset) : null());
    }
    ch.set("finish_reason", finish_reason_json(o.reason));
    if (params.return_token_ids) {
      ch.set("token_ids", ids_json(o.ids));
      ch.set("prompt_token_ids", ids_json(shape.prompts[p]));
    }
    choices.push_back(std::move(ch));
  }
  json::Value body = envelope(shape, false);
  body.set("choices", std::move(choices));
  body.set("usage", usage_json(shape, out));
  w.send(200, "application/json", json::dump(body));
}

void respond_stream(GenerationRun& run, const Engine& e, HttpResponseWriter& w, const ResponseShape& shape,
                    const GenerationParams& params, std::vector<ChoiceOutput>& out) {
  if (!begin_sse(w)) return;
  std::vector<int64_t> offsets(out.size(), 0);
  auto chunk = [&](json::Value choices) {
    json::Value o = envelope(shape, true);
    o.set("choices", std::move(choices));
    if (params.include_usage) o.set("usage", null());
    return sse_event(json::dump(o));
  };
  // Chat streams open each choice with the assistant's role; an echoed completion opens with the prompt.
  std::string opening;
  for (size_t c = 0; c < out.size(); ++c) {
    const size_t p = shape.prompt_of_choice[c];
    json::Value ch = json::Value::object();
    ch.set("index", int64_t(c));
    if (shape.chat) {
      json::Value d = json::Value::object();
      d.set("role", "assistant");
      d.set("content", "");
      ch.set("delta", std::move(d));
    } else if (!shape.echo[p].empty()) {
      ch.set("text", shape.echo[p]);
      offsets[c] = int64_t(shape.echo[p].size());
    } else {
      continue;
    }
    ch.set("logprobs", null());
    ch.set("finish_reason", null());
    json::Value list = json::Value::array();
    list.push_back(std::move(ch));
    opening += chunk(std::move(list));
  }
  if (!opening.empty() && !w.write(opening)) return;

  bool failed = false;
  const bool live = run.run([&](const std::vector<ChoiceEvent>& batch) {
    // Everything that arrived together for a choice goes out as one chunk (fewer writes under load).
    std::vector<ChoiceOutput> delta(out.size());
    std::vector<size_t> order;  // choices in the order their first event arrived
    std::vector<bool> seen(out.size(), false);
    for (const auto& ce : batch) {
      if (!seen[ce.choice]) order.push_back(ce.choice);
      seen[ce.choice] = true;
      delta[ce.choice].add(ce.ev, shape.logprobs);
      out[ce.choice].add(ce.ev, shape.logprobs);
    }
    std::string data;
    for (size_t c : order) {
      const ChoiceOutput& d = delta[c];
      if (d.finished && d.reason != FinishReason::Stop && d.reason != FinishReason::Length) {
        const ApiError err = choice_error(d);
        data += sse_event(error_body(err));
        failed = true;
        continue;
      }
      if (d.text.empty() && d.ids.empty() && !d.finished) continue;
      // A chunk with no text and no finish reason would be noise unless it carries logprobs or token ids.
      if (d.text.empty() && !d.finished && !shape.logprobs && !params.return_token_ids) continue;
      json::Value ch = json::Value::object();
      ch.set("index", int64_t(c));
      if (shape.chat) {
        json::Value dj = json::Value::object();
        if (!d.text.empty() || !d.finished) dj.set("content", d.text);
        ch.set("delta", std::move(dj));
        ch.set("logprobs", shape.logprobs && !d.logprobs.empty() ? chat_logprobs(e, d) : null());
      } else {
        ch.set("text", d.text);
        ch.set("logprobs", shape.logprobs && !d.logprobs.empty() ? completion_logprobs(e, d, offsets[c]) : null());
      }
      ch.set("finish_reason", d.finished ? finish_reason_json(d.reason) : null());
      if (params.return_token_ids) ch.set("token_ids", ids_json(d.ids));
      json::Value list = json::Value::array();
      list.push_back(std::move(ch));
      data += chunk(std::move(list));
    }
    return data.empty() || w.write(data);
  });
  if (!live) return;  // the client is gone
  std::string tail;
  if (params.include_usage && !failed) {
    json::Value o = envelope(shape, true);
    o.set("choices", json::Value::array());
    o.set("usage", usage_json(shape, out));
    tail += sse_event(json::dump(o));
  }
  tail += kSseDone;
  if (w.write(tail)) w.end_stream();
}

}  // namespace

std::string new_response_id(const char* prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  uint64_t a, b;
  {
    std::lock_guard<std::mutex> lock(mu);
    a = rng();
    b = rng();
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx%08llx", (unsigned long long)a, (unsigned long long)(b >> 32));
  return std::string(prefix) + buf;
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void respond(GenerationRun& run, Engine& engine, HttpResponseWriter& w, const ResponseShape& shape,
             const GenerationParams& params) {
  std::vector<ChoiceOutput> out(shape.prompt_of_choice.size());
  if (params.stream) {
    respond_stream(run, engine, w, shape, params, out);
  } else {
    respond_whole(run, engine, w, shape, params, out);
  }
}

}  // namespace mmfp4::server
