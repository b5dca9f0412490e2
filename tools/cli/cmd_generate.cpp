// mmfp4 generate: text (or token ids) in, streamed text out; --json ends with one machine-readable line.
#include <cstdio>

#include "args.h"
#include "command.h"
#include "core/error.h"
#include "core/json.h"
#include "engine_options.h"
#include "mmfp4/engine.h"

namespace mmfp4::cli {
namespace {

int run_generate(const std::vector<std::string>& argv) {
  Args a("generate", "mmfp4 generate -m DIR (-p TEXT | --prompt-ids 1,2,3) [options]");
  add_engine_options(a);
  a.option("-p", "--prompt", "TEXT", "the prompt");
  a.option("", "--prompt-ids", "IDS", "the prompt as comma-separated token ids (no tokenizer needed)");
  a.option("-n", "--n-predict", "N", "tokens to generate at most", "128");
  a.option("", "--stop", "STR", "stop string (repeatable)");
  a.flag("--chat", "wrap the prompt as a user message with the model's chat template");
  a.flag("--ignore-eos", "do not stop at the end-of-sequence token");
  a.flag("--json", "print the result as one JSON object on the last line of stdout");
  add_sampling_options(a);
  if (!a.parse(argv)) return 0;
  if (a.has("--prompt") == a.has("--prompt-ids")) fail("give exactly one of -p TEXT or --prompt-ids IDS");
  EngineOptions eo = engine_options(a);
  eo.max_batch = 1;
  auto engine = Engine::open(eo);

  Request r;
  if (a.has("--prompt-ids")) {
    for (int64_t id : parse_int_list(a.get("--prompt-ids"), "--prompt-ids")) r.prompt.push_back(int32_t(id));
  } else if (a.get_flag("--chat")) {
    json::Value msgs = json::Value::array();
    json::Value m = json::Value::object();
    m.set("role", "user");
    m.set("content", a.get("--prompt"));
    msgs.push_back(m);
    r.prompt = engine->tokenize(engine->apply_chat_template(json::dump(msgs), true), false);
  } else {
    r.prompt = engine->tokenize(a.get("--prompt"), true);
  }
  r.max_new_tokens = a.get_int("--n-predict", 128);
  r.sampling = sampling_options(a, engine->default_sampling());
  r.stop = a.get_all("--stop");
  r.ignore_eos = a.get_flag("--ignore-eos");
  const bool as_json = a.get_flag("--json");
  const bool has_text = engine->tokenizer() != nullptr;

  Result res = engine->generate(r, [&](const TokenEvent& ev) {
    if (!ev.text.empty()) {
      std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
      std::fflush(stdout);
    } else if (!has_text && ev.token >= 0) {
      std::printf("%s%d", ev.completion_tokens > 1 ? "," : "", ev.token);
      std::fflush(stdout);
    }
  });
  std::printf("\n");
  if (res.reason == FinishReason::Error) fail(res.error);
  if (as_json) {
    json::Value o = json::Value::object();
    json::Value p = json::Value::array(), g = json::Value::array();
    for (int32_t id : res.prompt_ids) p.push_back(id);
    for (int32_t id : res.ids) g.push_back(id);
    o.set("model", engine->model_name());
    o.set("prompt_ids", std::move(p));
    o.set("generated_ids", std::move(g));
    o.set("text", res.text);
    o.set("finish_reason", finish_reason_name(res.reason));
    o.set("seed", int64_t(r.sampling.seed));
    json::Value t = json::Value::object();
    t.set("prompt_tokens", int64_t(res.prompt_ids.size()));
    t.set("generated_tokens", int64_t(res.ids.size()));
    t.set("time_to_first_token_s", res.time_to_first_token_s);
    t.set("total_s", res.total_s);
    t.set("prefill_tokens_per_s", res.prefill_tokens_per_s);
    t.set("decode_tokens_per_s", res.decode_tokens_per_s);
    o.set("timings", std::move(t));
    o.set("device", engine->memory_plan());
    std::printf("%s\n", json::dump(o).c_str());
  } else {
    std::fprintf(stderr, "[%zu prompt tokens, %zu generated, prefill %.1f tok/s, decode %.1f tok/s, %s]\n",
                 res.prompt_ids.size(), res.ids.size(), res.prefill_tokens_per_s, res.decode_tokens_per_s,
                 finish_reason_name(res.reason));
  }
  return 0;
}

}  // namespace
MMFP4_COMMAND("generate", "generate text from a prompt (streams; --json for machines)", run_generate);
}  // namespace mmfp4::cli
