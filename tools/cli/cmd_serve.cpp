// mmfp4 serve: the OpenAI-compatible HTTP server (tools/server) over one engine. It listens at once and loads the
// model in the background (/health answers 503 until it is ready), then serves until SIGINT or SIGTERM.
#include <signal.h>

#include <cstdio>
#include <ctime>

#include "args.h"
#include "command.h"
#include "core/error.h"
#include "core/log.h"
#include "engine_options.h"
#include "mmfp4/engine.h"
#include "server/openai_server.h"

namespace mmfp4::cli {
namespace {

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host.starts_with("127.");
}

int run_serve(const std::vector<std::string>& argv) {
  Args a("serve", "mmfp4 serve -m DIR [--host 127.0.0.1] [--port 8080] [--max-batch N] [--ctx N] [--api-key K]");
  add_engine_options(a);
  a.option("", "--host", "ADDR", "address to listen on (0.0.0.0: every interface)", "127.0.0.1");
  a.option("", "--port", "N", "port to listen on (0: any free port, printed at start)", "8080");
  a.option("", "--max-batch", "N", "sequences decoded together", "8");
  a.option("", "--max-batch-tokens", "N", "tokens per engine step (decodes first, then prefill chunks)", "256");
  a.option("", "--max-queue", "N", "requests waiting beyond the batch before new ones get 429", "256");
  a.option("", "--kv-blocks", "N", "KV-cache blocks of 16 tokens (default: max-batch full contexts)", "0");
  a.flag("--no-prefix-caching", "do not share KV blocks of identical prompt prefixes");
  a.option("", "--api-key", "KEY", "require 'Authorization: Bearer KEY' on /v1/ routes (default: $MMFP4_API_KEY)");
  a.option("", "--served-model-name", "NAME", "model name in responses and /v1/models (default: the folder name)");
  a.option("", "--max-body", "BYTES", "largest request body accepted (413 beyond)", "8388608");
  a.option("", "--max-connections", "N", "open connections at most (503 beyond)", "512");
  a.option("", "--request-timeout", "S", "a request must arrive whole within S seconds of its first byte", "30");
  a.option("", "--idle-timeout", "S", "close keep-alive connections idle for S seconds", "60");
  add_sampling_options(a);
  if (!a.parse(argv)) return 0;

  EngineOptions eo = engine_options(a);
  eo.max_batch = a.get_int("--max-batch", 8);
  eo.max_batch_tokens = a.get_int("--max-batch-tokens", 256);
  eo.max_queue = a.get_int("--max-queue", 256);
  eo.kv_blocks = a.get_int("--kv-blocks", 0);
  eo.prefix_caching = !a.get_flag("--no-prefix-caching");
  if (eo.max_batch <= 0 || eo.max_batch_tokens <= 0 || eo.max_queue <= 0 || eo.kv_blocks < 0)
    fail("--max-batch, --max-batch-tokens and --max-queue must be positive, --kv-blocks not negative");

  server::ServerOptions so;
  so.http.host = a.get("--host");
  const int64_t port = a.get_int("--port", 8080);
  if (port < 0 || port > 65535) fail("--port must be in [0, 65535]");
  so.http.port = int(port);
  const int64_t max_body = a.get_int("--max-body", 8 << 20);
  if (max_body <= 0) fail("--max-body must be positive");
  so.http.limits.max_body_bytes = size_t(max_body);
  so.http.max_connections = int(a.get_int("--max-connections", 512));
  so.http.request_timeout_s = a.get_double("--request-timeout", 30);
  so.http.idle_timeout_s = a.get_double("--idle-timeout", 60);
  if (so.http.max_connections <= 0 || so.http.request_timeout_s <= 0 || so.http.idle_timeout_s <= 0)
    fail("--max-connections, --request-timeout and --idle-timeout must be positive");
  so.api_key = a.has("--api-key") ? a.get("--api-key") : (std::getenv("MMFP4_API_KEY") ? std::getenv("MMFP4_API_KEY") : "");
  so.served_model_name = a.get("--served-model-name");
  so.model_aliases.push_back(eo.model_dir);
  // Server-wide sampling defaults: given options override the model's generation_config.json. Checked now so a
  // bad value stops the command before anything is loaded.
  if (a.has("--seed")) fail("--seed has no meaning for a server: each request sends its own 'seed'");
  sampling_options(a, SamplingParams{});
  so.sampling_defaults = [a](const SamplingParams& model) {
    SamplingParams p = sampling_options(a, model);
    p.seed = 0;  // seeds are per request
    return p;
  };
  if (!is_loopback(so.http.host) && so.api_key.empty())
    log_warn("serve: listening on ", so.http.host, " without --api-key: anyone who can reach it can use it");

  // SIGINT/SIGTERM are taken by sigtimedwait below; blocked before any thread starts, so no thread gets them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  server::OpenAIServer srv(so);
  srv.start();
  std::fprintf(stderr, "mmfp4 serve: listening on http://%s:%d (loading %s)\n", so.http.host.c_str(), srv.port(),
               eo.model_dir.c_str());
  std::fflush(stderr);
  srv.load(eo);
  bool announced = false;
  while (true) {
    const timespec tick{0, 200 * 1000 * 1000};
    const int sig = sigtimedwait(&sigs, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      std::fprintf(stderr, "mmfp4 serve: stopping (signal %d)\n", sig);
      break;
    }
    const auto st = srv.state();
    if (st == server::OpenAIServer::State::Failed) {
      srv.stop();
      fail("cannot load the model: ", srv.load_error());
    }
    if (st == server::OpenAIServer::State::Ready && !announced) {
      announced = true;
      std::fprintf(stderr, "mmfp4 serve: ready: %s\n", srv.engine()->memory_plan().c_str());
      std::fflush(stderr);
    }
  }
  srv.stop();
  return 0;
}

}  // namespace
MMFP4_COMMAND("serve", "OpenAI-compatible HTTP server (completions, chat, streaming, metrics)", run_serve);
}  // namespace mmfp4::cli
