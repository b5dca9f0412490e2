// mmfp4 chat: an interactive conversation using the model's chat template, streaming replies. The conversation's
// KV cache is kept between turns: each turn re-sends the whole conversation and the engine's prefix cache reuses
// every full block already computed, so only the new text is prefilled.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "args.h"
#include "command.h"
#include "core/error.h"
#include "core/json.h"
#include "engine_options.h"
#include "mmfp4/engine.h"

namespace mmfp4::cli {
namespace {

int run_chat(const std::vector<std::string>& argv) {
  Args a("chat", "mmfp4 chat -m DIR [options]   (type /exit to quit, /reset to start over)");
  add_engine_options(a);
  a.option("-n", "--n-predict", "N", "tokens per reply at most", "512");
  a.option("", "--system", "TEXT", "a system message");
  add_sampling_options(a);
  if (!a.parse(argv)) return 0;
  EngineOptions eo = engine_options(a);
  eo.max_batch = 1;
  auto engine = Engine::open(eo);
  if (!engine->tokenizer()) fail(eo.model_dir, ": chat needs a tokenizer.json");
  const bool tty = ::isatty(0) && ::isatty(1);
  const SamplingParams sp = sampling_options(a, engine->default_sampling());

  json::Value msgs = json::Value::array();
  auto reset = [&] {
    msgs = json::Value::array();
    if (a.has("--system")) {
      json::Value m = json::Value::object();
      m.set("role", "system");
      m.set("content", a.get("--system"));
      msgs.push_back(m);
    }
  };
  reset();
  if (tty) std::printf("mmfp4 chat with %s (%s). /exit quits, /reset starts over.\n", engine->model_name().c_str(),
                       engine->memory_plan().c_str());
  std::string line;
  while (true) {
    if (tty) {
      std::printf("\n> ");
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      reset();
      continue;
    }
    if (line.empty()) continue;
    json::Value m = json::Value::object();
    m.set("role", "user");
    m.set("content", line);
    msgs.push_back(m);
    Request r;
    r.prompt = engine->tokenize(engine->apply_chat_template(json::dump(msgs), true), false);
    r.max_new_tokens = std::min<int64_t>(a.get_int("--n-predict", 512),
                                         engine->max_context() - int64_t(r.prompt.size()));
    if (r.max_new_tokens <= 0) {
      std::printf("[the conversation fills the context of %lld tokens: /reset to start over]\n",
                  (long long)engine->max_context());
      msgs.as_array().pop_back();
      continue;
    }
    r.sampling = sp;
    Result res = engine->generate(r, [&](const TokenEvent& ev) {
      std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
      std::fflush(stdout);
    });
    std::printf("\n");
    if (res.reason == FinishReason::Error) fail(res.error);
    if (tty)
      std::fprintf(stderr, "[%zu tokens, %lld reused from the cache, %.1f tok/s]\n", res.ids.size(),
                   (long long)res.cached_prompt_tokens, res.decode_tokens_per_s);
    json::Value reply = json::Value::object();
    reply.set("role", "assistant");
    reply.set("content", res.text);
    msgs.push_back(reply);
  }
  return 0;
}

}  // namespace
MMFP4_COMMAND("chat", "interactive chat with the model's chat template (multi-turn, cache kept)", run_chat);
}  // namespace mmfp4::cli
