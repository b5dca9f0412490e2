// Load test for the OpenAI server on loopback: N clients x M requests with random prompt lengths and completion
// lengths; some streamed, some cancelled mid-stream (the client hangs up), some malformed (bad JSON, bad fields,
// oversized, protocol garbage), some sampled with a seed. The server runs in this process over one engine.
//
// Checked afterwards: every request got an answer (none lost); each greedy or seeded response carries exactly the
// ids the same request produces alone (Engine::generate on a fresh engine with max_batch 1: nothing mixed up
// between requests); every malformed request got a 4xx with an error message; no request is left running; memory
// (RSS) before and after, with the engine's KV-cache usage. Prints throughput, latency and TTFT percentiles.
//
//   mmfp4_server_load [--model DIR] [--clients 64] [--requests 20] [--max-batch 16] [--ctx 512] [--seed 1]
//                     [--json FILE] [--no-baseline]
// The baseline (unless --no-baseline) runs the same generation requests from as many threads straight into a fresh
// engine, without HTTP: the ceiling the server's throughput is measured against. Exit status 1 when a check fails.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "mmfp4/engine.h"
#include "server/http_client.h"
#include "server/openai_server.h"

using namespace mmfp4;
using namespace mmfp4::server;

namespace {

enum class Kind { Greedy, GreedyStream, Chat, Seeded, Cancel, Malformed, Garbage };
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Greedy: return "greedy";
    case Kind::GreedyStream: return "greedy-stream";
    case Kind::Chat: return "chat";
    case Kind::Seeded: return "seeded";
    case Kind::Cancel: return "cancel";
    case Kind::Malformed: return "malformed";
    case Kind::Garbage: return "garbage";
  }
  return "?";
}

struct Outcome {
  Kind kind = Kind::Greedy;
  int status = 0;
  std::string problem;             // non-empty: a failed check
  Request solo;                    // what to run alone for the comparison (greedy, seeded, chat)
  bool compare = false;
  std::vector<int32_t> ids;        // what the server returned
  int64_t tokens = 0;
  double latency_s = 0, ttft_s = -1;
};

struct Config {
  std::string model;
  int clients = 64, requests = 20, max_batch = 16;
  int64_t ctx = 512;
  uint64_t seed = 1;
  std::string json_out;
  bool baseline = true;
};

double rss_mb(const char* field = "VmRSS:") {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::atof(line.c_str() + std::strlen(field)) / 1024.0;
  return 0;
}

std::string ids_json(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

std::vector<int32_t> ids_of(const json::Value& a) {
  std::vector<int32_t> out;
  for (const auto& x : a.as_array()) out.push_back(int32_t(x.as_int()));
  return out;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))];
}

// A JSON-level mistake the server must answer with this status.
struct Bad {
  const char* path;
  std::string body;
  int status;
};
std::vector<Bad> bad_requests() {
  return {
      {"/v1/completions", "{\"prompt\": [1, 2", 400},
      {"/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": -5}", 400},
      {"/v1/completions", "{\"prompt\": \"x\", \"temperature\": \"hot\"}", 400},
      {"/v1/completions", "{\"prompt\": [1, 999999]}", 400},
      {"/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 100000}", 400},
      {"/v1/completions", "{\"prompt\": \"x\", \"model\": \"gpt-5\"}", 404},
      {"/v1/completions", "{\"prompt\": \"x\", \"n\": 1000}", 400},
      {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\"}]}", 400},
      {"/v1/chat/completions", "{\"messages\": \"hello\"}", 400},
      {"/v1/chat/completions", "[]", 400},
      {"/v2/completions", "{}", 404},
  };
}

// Protocol-level garbage on a fresh connection, with the status it must get.
std::pair<std::string, int> garbage(std::mt19937_64& rng) {
  switch (rng() % 4) {
    case 0: {
      std::string junk(size_t(16 + rng() % 512), '\0');
      for (char& c : junk) c = char(0x80 | rng());  // high bytes: never a valid request line
      return {junk, 400};
    }
    case 1: return {"POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413};
    case 2: return {"GET /health HTTP/3.0\r\n\r\n", 505};
    default: return {"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nnot-hex\r\n", 400};
  }
}

void run_client(int client, const Config& cfg, int port, const std::vector<int32_t>& chat_prompt_hint,
                std::vector<Outcome>& out) {
  (void)chat_prompt_hint;
  std::mt19937_64 rng(cfg.seed * 1000003 + uint64_t(client));
  HttpClient http("127.0.0.1", port, 120);
  const auto bad = bad_requests();
  for (int r = 0; r < cfg.requests; ++r) {
    Outcome o;
    const uint64_t pick = rng() % 100;
    o.kind = pick < 35 ? Kind::Greedy
             : pick < 55 ? Kind::GreedyStream
             : pick < 65 ? Kind::Chat
             : pick < 75 ? Kind::Seeded
             : pick < 85 ? Kind::Cancel
             : pick < 95 ? Kind::Malformed
                         : Kind::Garbage;
    // Random lengths: mostly short prompts, some long ones (chunked prefill).
    const size_t plen = rng() % 5 == 0 ? size_t(100 + rng() % 300) : size_t(1 + rng() % 60);
    std::vector<int32_t> prompt(plen);
    for (auto& id : prompt) id = int32_t(1 + rng() % 8000);
    const int64_t max_tokens = int64_t(1 + rng() % 64);
    const double t0 = now_seconds();
    try {
      if (o.kind == Kind::Malformed) {
        const Bad& b = bad[rng() % bad.size()];
        const auto res = http.request("POST", b.path, b.body);
        o.status = res.status;
        json::Value v = json::parse(res.body, "error body");
        if (res.status != b.status) o.problem = cat("expected ", b.status, ", got ", res.status, ": ", res.body);
        else if (!v["error"]["message"].is_string() || v["error"]["message"].as_string().empty())
          o.problem = "4xx without an error message: " + res.body;
      } else if (o.kind == Kind::Garbage) {
        auto [bytes, want] = garbage(rng);
        HttpClient raw("127.0.0.1", port, 30);
        raw.send_raw(bytes);
        const auto res = raw.read_response();
        o.status = res.status;
        json::Value v = json::parse(res.body, "error body");
        if (res.status != want) o.problem = cat("garbage: expected ", want, ", got ", res.status);
        else if (!v["error"]["message"].is_string()) o.problem = "garbage: no error message";
      } else {
        const bool stream = o.kind == Kind::GreedyStream || o.kind == Kind::Cancel || (o.kind == Kind::Seeded && rng() % 2);
        std::string path = "/v1/completions", body;
        o.solo.prompt = prompt;
        o.solo.max_new_tokens = max_tokens;
        o.solo.ignore_eos = true;
        if (o.kind == Kind::Chat) {
          path = "/v1/chat/completions";
          body = "{\"messages\": [{\"role\": \"user\", \"content\": \"Request " + std::to_string(client * 1000 + r) +
                 ": tell me a story.\"}], \"max_tokens\": " + std::to_string(max_tokens) + ", \"ignore_eos\": true";
        } else {
          body = "{\"prompt\": " + ids_json(prompt) + ", \"max_tokens\": " + std::to_string(max_tokens) +
                 ", \"ignore_eos\": true";
        }
        if (o.kind == Kind::Seeded) {
          o.solo.sampling.temperature = 0.9f;
          o.solo.sampling.top_p = 0.95f;
          o.solo.sampling.seed = rng() % 1000000;
          body += ", \"temperature\": 0.9, \"top_p\": 0.95, \"seed\": " + std::to_string(o.solo.sampling.seed);
        }
        // A cancelled request asks for as much as fits, so it is still running when its client hangs up.
        if (o.kind == Kind::Cancel)
          body = "{\"prompt\": " + ids_json(prompt) + ", \"max_tokens\": " + std::to_string(cfg.ctx - int64_t(plen)) +
                 ", \"ignore_eos\": true";
        body += ", \"return_token_ids\": true";
        body += stream ? ", \"stream\": true}" : "}";
        o.compare = o.kind != Kind::Cancel;
        if (!stream) {
          const auto res = http.request("POST", path, body);
          o.status = res.status;
          if (res.status != 200) {
            o.problem = cat("status ", res.status, ": ", res.body.substr(0, 300));
          } else {
            const json::Value v = json::parse(res.body, "response");
            o.ids = ids_of(v["choices"][0]["token_ids"]);
            if (o.kind == Kind::Chat) o.solo.prompt = ids_of(v["choices"][0]["prompt_token_ids"]);
          }
        } else {
          SseSplitter sse;
          int chunks = 0;
          const int cancel_after = 2 + int(rng() % 6);
          bool done = false;
          const auto res = http.stream("POST", path, body, {}, [&](std::string_view d) {
            for (const auto& ev : sse.push(d)) {
              if (ev == "[DONE]") {
                done = true;
                continue;
              }
              const json::Value c = json::parse(ev, "chunk");
              if (!c["choices"].is_array() || c["choices"].size() == 0) continue;
              const auto ids = ids_of(c["choices"][0]["token_ids"]);
              if (!ids.empty() && o.ttft_s < 0) o.ttft_s = now_seconds() - t0;
              o.ids.insert(o.ids.end(), ids.begin(), ids.end());
              ++chunks;
            }
            return o.kind != Kind::Cancel || chunks < cancel_after;
          });
          o.status = res.status;
          if (res.status != 200) o.problem = cat("status ", res.status);
          else if (o.kind != Kind::Cancel && !done) o.problem = "stream ended without [DONE]";
        }
      }
    } catch (const std::exception& e) {
      o.problem = cat(kind_name(o.kind), ": transport error: ", e.what());
      http.close();
    }
    o.latency_s = now_seconds() - t0;
    o.tokens = int64_t(o.ids.size());
    out.push_back(std::move(o));
  }
}

// The ceiling: the same generation requests from the same number of clients, straight into a fresh engine with
// the same options (Engine::generate, no HTTP, no JSON). Returns {wall seconds, tokens, latencies}.
struct Baseline {
  double wall_s = 0;
  int64_t tokens = 0;
  std::vector<double> latency;
};
Baseline engine_alone(const EngineOptions& eo, const std::vector<std::vector<Outcome>>& per_client) {
  auto engine = Engine::open(eo);
  Baseline b;
  std::vector<std::vector<double>> lat(per_client.size());
  std::vector<int64_t> tokens(per_client.size(), 0);
  const double t0 = now_seconds();
  std::vector<std::thread> th;
  for (size_t c = 0; c < per_client.size(); ++c)
    th.emplace_back([&, c] {
      for (const auto& o : per_client[c]) {
        if (!o.compare || !o.problem.empty()) continue;
        const double t = now_seconds();
        tokens[c] += int64_t(engine->generate(o.solo).ids.size());
        lat[c].push_back(now_seconds() - t);
      }
    });
  for (auto& t : th) t.join();
  b.wall_s = now_seconds() - t0;
  for (size_t c = 0; c < per_client.size(); ++c) {
    b.tokens += tokens[c];
    b.latency.insert(b.latency.end(), lat[c].begin(), lat[c].end());
  }
  return b;
}

int run(const Config& cfg) {
  set_log_level(LogLevel::Warn);
  EngineOptions eo;
  eo.model_dir = cfg.model;
  eo.device = "cpu";
  eo.max_batch = cfg.max_batch;
  eo.max_context = cfg.ctx;
  eo.max_queue = 1024;
  const double rss0 = rss_mb();
  auto engine = std::shared_ptr<Engine>(Engine::open(eo));
  ServerOptions so;
  so.http.port = 0;
  OpenAIServer srv(so);
  srv.start();
  srv.set_engine(engine);
  const double rss_before = rss_mb();

  std::printf("== server load test ==\n");
  std::printf("model     %s\n", cfg.model.c_str());
  std::printf("engine    max_batch %d, ctx %lld, %s\n", cfg.max_batch, (long long)cfg.ctx, engine->memory_plan().c_str());
  std::printf("load      %d clients x %d requests (35%% greedy, 20%% greedy streamed, 10%% chat, 10%% seeded "
              "sampling, 10%% cancelled mid-stream, 10%% malformed JSON, 5%% protocol garbage), seed %llu\n",
              cfg.clients, cfg.requests, (unsigned long long)cfg.seed);
  std::printf("machine   %u hardware threads\n", std::thread::hardware_concurrency());
  std::fflush(stdout);

  std::vector<std::vector<Outcome>> per_client(size_t(cfg.clients));
  const double t0 = now_seconds();
  {
    std::vector<std::thread> th;
    for (int c = 0; c < cfg.clients; ++c)
      th.emplace_back([&, c] { run_client(c, cfg, srv.port(), {}, per_client[size_t(c)]); });
    for (auto& t : th) t.join();
  }
  const double wall = now_seconds() - t0;
  // Cancelled requests end at the engine's next step.
  for (int i = 0; i < 500 && (engine->stats().requests_running || engine->stats().requests_waiting); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const EngineStats st = engine->stats();
  const double rss_after = rss_mb(), rss_peak = rss_mb("VmHWM:");
  const int64_t cancelled = srv.metrics().finished(FinishReason::Cancelled);
  srv.stop();
  engine.reset();
  Baseline base;
  if (cfg.baseline) base = engine_alone(eo, per_client);

  // Flatten and compare with solo runs.
  std::vector<Outcome> all;
  for (auto& v : per_client)
    for (auto& o : v) all.push_back(std::move(o));
  std::map<Kind, int> count, failed;
  std::vector<std::string> problems;
  int64_t gen_tokens = 0;
  std::vector<double> lat, ttft;
  int compared = 0;
  {
    EngineOptions solo_eo = eo;
    solo_eo.max_batch = 1;
    auto solo = Engine::open(solo_eo);
    for (auto& o : all) {
      ++count[o.kind];
      if (o.problem.empty() && o.compare) {
        const auto ids = solo->generate(o.solo).ids;
        ++compared;
        if (ids != o.ids)
          o.problem = cat(kind_name(o.kind), ": ids differ from the request run alone (", o.ids.size(), " vs ",
                          ids.size(), " tokens)");
      }
      if (!o.problem.empty()) {
        ++failed[o.kind];
        if (problems.size() < 20) problems.push_back(o.problem);
      }
      gen_tokens += o.tokens;
      if (o.kind != Kind::Malformed && o.kind != Kind::Garbage && o.kind != Kind::Cancel && o.problem.empty())
        lat.push_back(o.latency_s);
      if (o.ttft_s >= 0 && o.kind != Kind::Cancel) ttft.push_back(o.ttft_s);
    }
  }
  int total_failed = 0;
  for (auto& [k, n] : failed) total_failed += n;
  const bool leftover = st.requests_running != 0 || st.requests_waiting != 0;

  std::printf("\n== results ==\n");
  std::printf("requests  %zu in %.2f s: %.1f requests/s, %lld tokens received, %.0f tokens/s\n", all.size(), wall,
              double(all.size()) / wall, (long long)gen_tokens, double(gen_tokens) / wall);
  std::printf("latency   generation requests (excl. cancelled): p50 %.3f s, p90 %.3f s, p99 %.3f s, max %.3f s\n",
              pct(lat, 0.5), pct(lat, 0.9), pct(lat, 0.99), pct(lat, 1.0));
  std::printf("ttft      streamed requests: p50 %.3f s, p90 %.3f s, p99 %.3f s\n", pct(ttft, 0.5), pct(ttft, 0.9),
              pct(ttft, 0.99));
  if (cfg.baseline)
    std::printf("baseline  the same %zu generation requests from %d clients straight into the engine (no HTTP): "
                "%.2f s, %.0f tokens/s, latency p50 %.3f s, p99 %.3f s (without the cancelled requests' partial work)\n",
                base.latency.size(), cfg.clients, base.wall_s, double(base.tokens) / base.wall_s, pct(base.latency, 0.5),
                pct(base.latency, 0.99));
  std::printf("kinds    ");
  for (auto& [k, n] : count) std::printf(" %s %d%s", kind_name(k), n, failed[k] ? cat(" (", failed[k], " FAILED)").c_str() : "");
  std::printf("\n");
  std::printf("checks    %d responses compared with solo runs, %d failed checks; engine ended %lld requests as "
              "cancelled; running/waiting after: %lld/%lld\n",
              compared, total_failed, (long long)cancelled, (long long)st.requests_running,
              (long long)st.requests_waiting);
  std::printf("engine    busy %.1f s of the %.1f s (steps), %lld steps, %lld preemptions, %lld prompt tokens computed (%lld from the prefix cache), KV "
              "blocks used after %lld of %lld (the prefix cache keeps finished prompts' blocks)\n",
              st.busy_seconds, wall, (long long)st.steps_total, (long long)st.preemptions_total, (long long)st.prompt_tokens_total,
              (long long)st.cached_prompt_tokens_total, (long long)st.kv_blocks_used, (long long)st.kv_blocks_total);
  std::printf("memory    RSS %.1f MB before the model, %.1f MB loaded (before the load), %.1f MB after; peak %.1f MB\n",
              rss0, rss_before, rss_after, rss_peak);
  for (const auto& p : problems) std::printf("FAILED    %s\n", p.c_str());
  if (leftover) std::printf("FAILED    requests left in the engine after the load\n");
  const bool ok = total_failed == 0 && !leftover;
  std::printf("%s\n", ok ? "== all checks passed ==" : "== CHECKS FAILED ==");

  if (!cfg.json_out.empty()) {
    json::Value j = json::Value::object();
    j.set("clients", cfg.clients);
    j.set("requests_per_client", cfg.requests);
    j.set("max_batch", cfg.max_batch);
    j.set("ctx", cfg.ctx);
    j.set("wall_s", wall);
    j.set("requests", int64_t(all.size()));
    j.set("requests_per_s", double(all.size()) / wall);
    j.set("tokens_per_s", double(gen_tokens) / wall);
    j.set("latency_p50_s", pct(lat, 0.5));
    j.set("latency_p99_s", pct(lat, 0.99));
    j.set("ttft_p50_s", pct(ttft, 0.5));
    j.set("ttft_p99_s", pct(ttft, 0.99));
    if (cfg.baseline) {
      j.set("baseline_wall_s", base.wall_s);
      j.set("baseline_tokens_per_s", double(base.tokens) / base.wall_s);
      j.set("baseline_latency_p50_s", pct(base.latency, 0.5));
      j.set("baseline_latency_p99_s", pct(base.latency, 0.99));
    }
    j.set("compared", compared);
    j.set("failed_checks", total_failed);
    j.set("cancelled", cancelled);
    j.set("preemptions", st.preemptions_total);
    j.set("kv_blocks_used_after", st.kv_blocks_used);
    j.set("kv_blocks_total", st.kv_blocks_total);
    j.set("rss_mb_loaded", rss_before);
    j.set("rss_mb_after", rss_after);
    j.set("rss_mb_peak", rss_peak);
    std::ofstream(cfg.json_out) << json::dump(j, {.indent = 2}) << "\n";
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  cfg.model = std::string(MMFP4_DEFAULT_MODEL);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") cfg.model = next();
    else if (a == "--clients") cfg.clients = std::atoi(next().c_str());
    else if (a == "--requests") cfg.requests = std::atoi(next().c_str());
    else if (a == "--max-batch") cfg.max_batch = std::atoi(next().c_str());
    else if (a == "--ctx") cfg.ctx = std::atoll(next().c_str());
    else if (a == "--seed") cfg.seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--json") cfg.json_out = next();
    else if (a == "--no-baseline") cfg.baseline = false;
    else {
      std::fprintf(stderr, "usage: %s [--model DIR] [--clients N] [--requests N] [--max-batch N] [--ctx N] [--seed S] [--json FILE] [--no-baseline]\n", argv[0]);
      return 2;
    }
  }
  if (cfg.clients <= 0 || cfg.requests <= 0 || cfg.max_batch <= 0 || cfg.ctx < 480) {
    std::fprintf(stderr, "clients, requests and max-batch must be positive and ctx at least 480\n");
    return 2;
  }
  try {
    return run(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "load test: %s\n", e.what());
    return 1;
  }
}
