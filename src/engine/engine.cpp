// The engine: request queue, continuous-batching scheduler, streaming. See include/mmfp4/engine.h.
#include "mmfp4/engine.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "backend/backend.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "engine/prefix_cache.h"
#include "engine/sequence.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#if __has_include("tokenizer/chat_template.h")
#include "tokenizer/chat_template.h"
#define MMFP4_HAVE_CHAT_TEMPLATE 1
#else
// The chat-template interpreter is being written; until it lands, models load without chat templates.
namespace mmfp4 {
struct ChatTemplate {
  static ChatTemplate parse(const std::string&, const std::string&) { return {}; }
  std::string render(const json::Value&) const { fail("chat templates are not available in this build"); }
};
inline std::optional<std::string> find_chat_template_source(const std::string&) { return std::nullopt; }
}  // namespace mmfp4
#endif
#include "tokenizer/tokenizer.h"

namespace mmfp4 {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
    default: return "none";
  }
}

struct Engine::Impl {
  EngineOptions opt;
  std::unique_ptr<Backend> be;
  std::unique_ptr<Model> model;
  std::unique_ptr<KVCache> kv;
  std::unique_ptr<PrefixCache> prefix;
  std::unique_ptr<Tokenizer> tok;
  std::optional<std::string> chat_template_src;
  std::unique_ptr<ChatTemplate> chat_template;
  std::vector<int32_t> eos;
  json::Value generation_config;

  // Shared with submitters (under mu).
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Sequence>> incoming;
  std::set<uint64_t> cancel_requests;
  uint64_t next_id = 1;
  bool stopping = false;
  EngineStats stats;

  // Scheduler state (engine thread only).
  std::deque<std::unique_ptr<Sequence>> waiting;  // admitted to the engine, not running (front = next)
  std::vector<std::unique_ptr<Sequence>> running;
  std::vector<float> logits;
  std::thread thread;
  // Work that must run on the engine thread between steps (the model and cache are not shared across threads).
  std::deque<std::function<void()>> jobs;

  void loop();
  bool step();
  void finish(std::unique_ptr<Sequence>& s, FinishReason r, const std::string& err = "");
  void emit(Sequence& s, TokenEvent ev);
  void admit(Sequence& s);
  bool reserve(Sequence& s, int64_t new_length, std::vector<std::pair<Sequence*, int64_t>>& plan);
  void release(Sequence& s);
};

namespace {

std::vector<int32_t> read_eos(const ModelConfig& cfg, const json::Value& gen, const Tokenizer* tok) {
  std::vector<int32_t> out;
  const json::Value* e = gen.find("eos_token_id");
  if (e && e->is_number()) out.push_back(int32_t(e->as_int()));
  else if (e && e->is_array())
    for (const auto& x : e->as_array())
      if (x.is_number()) out.push_back(int32_t(x.as_int()));
  if (out.empty())
    for (int64_t id : cfg.eos_token_ids) out.push_back(int32_t(id));
  if (out.empty() && tok && tok->eos_id()) out.push_back(*tok->eos_id());
  return out;
}

}  // namespace

Engine::Engine() : impl_(std::make_unique<Impl>()) {}

Engine::~Engine() { shutdown(); }

std::unique_ptr<Engine> Engine::open(const EngineOptions& opt) {
  std::unique_ptr<Engine> e(new Engine());
  Impl& I = *e->impl_;
  I.opt = opt;
  if (opt.model_dir.empty()) fail("no model folder given");
  if (!is_directory(opt.model_dir)) fail(opt.model_dir, ": not a folder");
  if (opt.max_batch <= 0 || opt.max_batch_tokens <= 0 || opt.max_queue <= 0)
    fail("max_batch, max_batch_tokens and max_queue must be positive");
  I.be = make_backend(opt.device, opt.threads);
  ModelOptions mo;
  mo.max_tokens = std::max(opt.max_batch_tokens, opt.max_batch);
  mo.max_context = opt.max_context;
  mo.check = opt.check;
  mo.verbose = opt.verbose;
  I.model = Model::load(opt.model_dir, *I.be, mo);
  const int64_t bs = mo.kv_block_size;
  const int64_t per_seq = (I.model->max_context() + bs - 1) / bs;
  int64_t blocks = opt.kv_blocks > 0 ? opt.kv_blocks : per_seq * opt.max_batch;
  if (blocks < per_seq)
    fail("kv_blocks (", blocks, ") must hold at least one full context of ", I.model->max_context(), " tokens (",
         per_seq, " blocks of ", bs, ")");
  I.kv = std::make_unique<KVCache>(*I.be, I.model->config(), blocks, bs);
  // Record the decode-step graphs of every batch bucket now (backends with graphs), not on first use.
  I.model->prepare_graphs(*I.kv);
  I.prefix = std::make_unique<PrefixCache>(*I.kv);
  if (file_exists(opt.model_dir + "/tokenizer.json")) {
    I.tok = Tokenizer::from_dir(opt.model_dir);
    I.chat_template_src = find_chat_template_source(opt.model_dir);
    if (I.chat_template_src)
      I.chat_template = std::make_unique<ChatTemplate>(ChatTemplate::parse(*I.chat_template_src, "chat_template"));
  }
  if (file_exists(opt.model_dir + "/generation_config.json"))
    I.generation_config = json::parse(read_file(opt.model_dir + "/generation_config.json"),
                                      opt.model_dir + "/generation_config.json");
  I.eos = read_eos(I.model->config(), I.generation_config, I.tok.get());
  I.logits.resize(size_t(mo.max_tokens * I.model->vocab_size()));
  I.stats.kv_blocks_total = blocks;

  if (opt.warmup) I.model->warm_up(*I.kv);  // every weight page, kernel and buffer touched before the first request
  I.thread = std::thread([&I] { I.loop(); });
  return e;
}

void Engine::shutdown() {
  if (!impl_) return;
  Impl& I = *impl_;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    if (I.stopping && !I.thread.joinable()) return;
    I.stopping = true;
  }
  I.cv.notify_all();
  if (I.thread.joinable()) I.thread.join();
}

uint64_t Engine::submit(Request r, TokenCallback on_event) {
  Impl& I = *impl_;
  const int64_t V = I.model->vocab_size(), ctx = I.model->max_context();
  if (r.prompt.empty()) fail("the prompt is empty");
  for (size_t i = 0; i < r.prompt.size(); ++i)
    if (r.prompt[i] < 0 || r.prompt[i] >= V)
      fail("prompt token ", i, " has id ", r.prompt[i], ", outside the vocabulary [0, ", V, ")");
  if (r.max_new_tokens < 0) fail("max_new_tokens must not be negative");
  if (int64_t(r.prompt.size()) + r.max_new_tokens > ctx)
    fail("prompt (", r.prompt.size(), " tokens) + max_new_tokens (", r.max_new_tokens, ") exceeds the context of ",
         ctx, " tokens");
  r.sampling.validate();
  if (!r.stop.empty() && !I.tok) fail("stop strings need a tokenizer, and this model folder has none");
  auto s = std::make_unique<Sequence>();
  s->req = std::move(r);
  s->cb = std::move(on_event);
  s->tokens = s->req.prompt;
  s->n_prompt = int64_t(s->tokens.size());
  s->sampler = std::make_unique<Sampler>(s->req.sampling, V);
  if (I.tok) s->decoder = std::make_unique<StreamDecoder>(*I.tok, s->req.skip_special_tokens);
  s->stop = StopMatcher(s->req.stop);
  s->t_submit = now_seconds();
  if (s->req.max_new_tokens == 0) {
    // Nothing to generate: the request is complete as submitted (no model step, no cache).
    uint64_t id;
    {
      std::lock_guard<std::mutex> lock(I.mu);
      id = I.next_id++;
      ++I.stats.requests_total;
    }
    TokenEvent ev;
    ev.request_id = id;
    ev.finished = true;
    ev.reason = FinishReason::Length;
    ev.prompt_tokens = s->n_prompt;
    if (s->cb) s->cb(ev);
    return id;
  }
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    if (I.stopping) fail("the engine is shutting down");
    if (int64_t(I.incoming.size()) + I.stats.requests_waiting >= I.opt.max_queue) {
      ++I.stats.requests_rejected;
      throw QueueFull();
    }
    id = s->id = I.next_id++;
    ++I.stats.requests_total;
    I.incoming.push_back(std::move(s));
  }
  I.cv.notify_all();
  return id;
}

void Engine::cancel(uint64_t id) {
  Impl& I = *impl_;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    I.cancel_requests.insert(id);
  }
  I.cv.notify_all();
}

Result Engine::generate(const Request& r) { return generate(r, nullptr); }

Result Engine::generate(const Request& r, const TokenCallback& on_event) {
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<TokenEvent> events;
  };
  auto sh = std::make_shared<Shared>();
  const double t0 = now_seconds();
  submit(r, [sh](const TokenEvent& ev) {
    {
      std::lock_guard<std::mutex> lock(sh->mu);
      sh->events.push_back(ev);
    }
    sh->cv.notify_one();
  });
  Result res;
  res.prompt_ids = r.prompt;
  double t_first = 0;
  while (true) {
    TokenEvent ev;
    {
      std::unique_lock<std::mutex> lock(sh->mu);
      sh->cv.wait(lock, [&] { return !sh->events.empty(); });
      ev = std::move(sh->events.front());
      sh->events.pop_front();
    }
    if (on_event) on_event(ev);
    if (ev.token >= 0) {
      if (res.ids.empty()) t_first = now_seconds();
      res.ids.push_back(ev.token);
      if (r.logprobs) res.logprobs.push_back(ev.logprob);
    }
    res.text += ev.text;
    if (ev.finished) {
      res.reason = ev.reason;
      res.error = ev.error;
      res.cached_prompt_tokens = ev.cached_prompt_tokens;
      // Tokens that ended generation (EOS, a stop string) are not part of the result.
      if (int64_t(res.ids.size()) > ev.completion_tokens) res.ids.resize(size_t(ev.completion_tokens));
      break;
    }
  }
  const double t_end = now_seconds();
  res.total_s = t_end - t0;
  if (!res.ids.empty()) {
    res.time_to_first_token_s = t_first - t0;
    res.prefill_tokens_per_s = double(r.prompt.size()) / std::max(1e-9, res.time_to_first_token_s);
    if (res.ids.size() > 1) res.decode_tokens_per_s = double(res.ids.size() - 1) / std::max(1e-9, t_end - t_first);
  }
  return res;
}

// ---------------------------------------------------------------------------------------------------------------
// Scheduler
// ---------------------------------------------------------------------------------------------------------------
void Engine::Impl::loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] {
        return stopping || !incoming.empty() || !running.empty() || !waiting.empty() || !jobs.empty();
      });
      if (stopping) break;
      while (!jobs.empty()) {
        auto job = std::move(jobs.front());
        jobs.pop_front();
        lock.unlock();
        job();
        lock.lock();
      }
      while (!incoming.empty()) {
        waiting.push_back(std::move(incoming.front()));
        incoming.pop_front();
      }
    }
    try {
      step();
    } catch (const std::exception& ex) {
      // A failure inside a step (e.g. --check finding a NaN) ends the requests of that step with the message.
      log_warn("engine step failed: ", ex.what());
      for (auto& s : running) finish(s, FinishReason::Error, ex.what());
      running.clear();
    }
  }
  // Shutdown: everything still here ends as cancelled (finish() takes the lock itself).
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& s : incoming) waiting.push_back(std::move(s));
    incoming.clear();
  }
  for (auto& s : running) finish(s, FinishReason::Cancelled);
  for (auto& s : waiting) finish(s, FinishReason::Cancelled);
  running.clear();
  waiting.clear();
}

void Engine::Impl::emit(Sequence& s, TokenEvent ev) {
  ev.request_id = s.id;
  if (s.cb) s.cb(ev);
}

void Engine::Impl::release(Sequence& s) {
  if (opt.prefix_caching) prefix->insert(s.tokens, s.cache, s.cache.length, s.registered_blocks);
  s.cache.clear(*kv);
  s.registered_blocks = 0;
}

void Engine::Impl::finish(std::unique_ptr<Sequence>& sp, FinishReason r, const std::string& err) {
  if (!sp) return;
  Sequence& s = *sp;
  TokenEvent ev;
  ev.finished = true;
  ev.reason = r;
  ev.error = err;
  if (s.decoder && r != FinishReason::Error && !s.stop_string_hit) {
    // Text held back (an incomplete UTF-8 character, a partial stop-string match) is released at the end.
    bool stopped = false;
    ev.text = s.stop.push(s.decoder->flush(), &stopped);
    if (!stopped) ev.text += s.stop.flush();
  }
  ev.prompt_tokens = s.n_prompt;
  ev.completion_tokens = s.n_generated;
  ev.cached_prompt_tokens = s.cached_prompt;
  release(s);
  {
    std::lock_guard<std::mutex> lock(mu);
    stats.generated_tokens_total += s.n_generated;
  }
  emit(s, std::move(ev));
  sp.reset();
}

bool Engine::Impl::reserve(Sequence& s, int64_t new_length, std::vector<std::pair<Sequence*, int64_t>>& plan) {
  while (!s.cache.reserve(*kv, new_length)) {
    const int64_t need = (new_length + kv->block_size() - 1) / kv->block_size() - int64_t(s.cache.blocks.size());
    if (prefix->evict(need - kv->free_blocks()) > 0) continue;
    // Preempt the most recently admitted other sequence: its blocks go back to the pool and it is recomputed
    // (prompt + what it generated) when there is room again. Its sampler keeps its state, so its output is the
    // same as if it had never been interrupted.
    size_t victim = running.size();
    for (size_t i = running.size(); i-- > 0;)
      if (running[i] && running[i].get() != &s) {
        victim = i;
        break;
      }
    if (victim == running.size()) return false;
    Sequence* v = running[victim].get();
    std::erase_if(plan, [v](const auto& p) { return p.first == v; });
    release(*v);
    {
      std::lock_guard<std::mutex> lock(mu);
      ++stats.preemptions_total;
    }
    waiting.push_front(std::move(running[victim]));
  }
  return true;
}

void Engine::Impl::admit(Sequence& s) {
  if (opt.prefix_caching) {
    const int64_t m = prefix->match(s.tokens, s.cache);
    if (!s.admitted_once) s.cached_prompt = m;
  }
  if (!s.admitted_once) s.t_admit = now_seconds();
  s.admitted_once = true;
}

bool Engine::Impl::step() {
  // Cancellations.
  std::set<uint64_t> cancels;
  {
    std::lock_guard<std::mutex> lock(mu);
    cancels.swap(cancel_requests);
  }
  if (!cancels.empty()) {
    for (auto& s : running)
      if (s && cancels.count(s->id)) finish(s, FinishReason::Cancelled);
    for (auto& s : waiting)
      if (s && cancels.count(s->id)) finish(s, FinishReason::Cancelled);
    std::erase_if(running, [](const auto& p) { return !p; });
    std::erase_if(waiting, [](const auto& p) { return !p; });
  }
  // Admission: FIFO while the batch has room and the pool has blocks for the prompt (a lone request is always
  // admitted: the pool holds at least one full context).
  while (!waiting.empty() && int64_t(running.size()) < opt.max_batch) {
    Sequence& s = *waiting.front();
    const int64_t need = (int64_t(s.tokens.size()) + kv->block_size() - 1) / kv->block_size();
    if (need > kv->free_blocks()) prefix->evict(need - kv->free_blocks());
    if (need > kv->free_blocks() && !running.empty()) break;  // wait for running sequences to finish
    admit(s);
    running.push_back(std::move(waiting.front()));
    waiting.pop_front();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stats.requests_running = int64_t(running.size());
    stats.requests_waiting = int64_t(waiting.size());
    stats.kv_blocks_used = kv->used_blocks();
  }
  if (running.empty()) return false;

  // Plan: every decoding sequence contributes its one token first (so long prompts never stall decoding), then
  // prefills take chunks of what is left of the token budget, oldest first.
  const double t0 = now_seconds();
  int64_t budget = opt.max_batch_tokens;
  std::vector<std::pair<Sequence*, int64_t>> plan;
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < running.size() && budget > 0; ++i) {
      if (!running[i]) continue;
      Sequence& s = *running[i];
      const int64_t pend = s.pending();
      if ((pass == 0) != (pend == 1)) continue;
      const int64_t n = std::min(pend, budget);
      if (!reserve(s, s.cache.length + n, plan)) {
        finish(running[i], FinishReason::Error,
               cat("the KV cache (", kv->n_blocks(), " blocks of ", kv->block_size(),
                   " tokens) cannot hold this request"));
        continue;
      }
      plan.emplace_back(&s, n);
      budget -= n;
    }
  }
  std::erase_if(running, [](const auto& p) { return !p; });
  if (plan.empty()) return false;

  // Build the batch: logits only for sequences whose last pending token is in this step.
  Batch b;
  std::vector<Sequence*> with_logits;
  for (size_t si = 0; si < plan.size(); ++si) {
    auto [s, n] = plan[si];
    b.seqs.push_back(&s->cache);
    const int64_t start = s->cache.length;
    const bool last = start + n == int64_t(s->tokens.size());
    for (int64_t j = 0; j < n; ++j)
      b.add(s->tokens[size_t(start + j)], int32_t(start + j), int32_t(si), last && j + 1 == n);
    if (last) with_logits.push_back(s);
  }
  // Greedy steps without penalties or logprobs take the argmax on the device: one id per row comes back instead
  // of a vocabulary of logits.
  bool all_greedy = !with_logits.empty();
  for (const Sequence* s : with_logits) {
    const SamplingParams& p = s->req.sampling;
    all_greedy = all_greedy && p.greedy() && p.repetition_penalty == 1.0f && p.presence_penalty == 0.0f &&
                 p.frequency_penalty == 0.0f && !s->req.logprobs;
  }
  std::vector<int32_t> greedy_ids(with_logits.size());
  if (all_greedy)
    model->forward_greedy(b, *kv, greedy_ids.data());
  else
    model->forward(b, *kv, logits.data());
  const int64_t V = model->vocab_size();
  int64_t prompt_tokens = 0;
  for (auto [s, n] : plan) {
    const int64_t before = s->cache.length;
    s->cache.length += n;
    prompt_tokens += std::max<int64_t>(0, std::min(s->n_prompt, s->cache.length) - before);
    if (opt.prefix_caching) prefix->insert(s->tokens, s->cache, s->cache.length, s->registered_blocks);
  }

  // Sample, stream, stop.
  std::vector<float> raw;
  for (size_t r = 0; r < with_logits.size(); ++r) {
    Sequence& s = *with_logits[r];
    float* lg = logits.data() + r * size_t(V);
    TokenEvent ev;
    if (s.req.logprobs) raw.assign(lg, lg + V);  // log-probabilities of the model, before penalties
    const int32_t tok = all_greedy ? greedy_ids[r] : s.sampler->sample(lg, s.tokens);
    if (s.req.logprobs) ev.logprob = log_softmax_at(raw.data(), V, tok);
    if (s.n_generated == 0) s.t_first = now_seconds();
    s.tokens.push_back(tok);
    ev.token = tok;
    FinishReason reason = FinishReason::None;
    const bool is_eos = !s.req.ignore_eos && std::find(eos.begin(), eos.end(), tok) != eos.end();
    const bool is_stop_id = std::find(s.req.stop_ids.begin(), s.req.stop_ids.end(), tok) != s.req.stop_ids.end();
    if (is_eos || is_stop_id) {
      reason = FinishReason::Stop;  // the stop token is not part of the completion
    } else {
      ++s.n_generated;
      if (s.decoder) {
        bool stopped = false;
        ev.text = s.stop.push(s.decoder->push(tok), &stopped);
        if (stopped) {
          reason = FinishReason::Stop;
          s.stop_string_hit = true;
        }
      }
      if (reason == FinishReason::None && s.n_generated >= s.req.max_new_tokens) reason = FinishReason::Length;
      if (reason == FinishReason::None && int64_t(s.tokens.size()) >= model->max_context())
        reason = FinishReason::Length;
    }
    if (!is_eos && !is_stop_id) emit(s, ev);
    if (reason != FinishReason::None) {
      for (auto& p : running)
        if (p.get() == &s) finish(p, reason);
    }
  }
  std::erase_if(running, [](const auto& p) { return !p; });
  {
    std::lock_guard<std::mutex> lock(mu);
    ++stats.steps_total;
    stats.prompt_tokens_total += prompt_tokens;
    stats.busy_seconds += now_seconds() - t0;
    stats.kv_blocks_used = kv->used_blocks();
    // Requests that finished in this step leave now: an idle engine runs no further step to update the gauges.
    stats.requests_running = int64_t(running.size());
    stats.requests_waiting = int64_t(waiting.size());
  }
  return true;
}

std::vector<float> Engine::score(const std::vector<std::vector<int32_t>>& seqs) {
  Impl& I = *impl_;
  const int64_t V = I.model->vocab_size(), ctx = I.model->max_context();
  size_t total = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    if (seqs[s].empty()) fail("sequence ", s, " is empty");
    if (int64_t(seqs[s].size()) > ctx)
      fail("sequence ", s, " has ", seqs[s].size(), " tokens, more than the context of ", ctx);
    for (size_t i = 0; i < seqs[s].size(); ++i)
      if (seqs[s][i] < 0 || seqs[s][i] >= V)
        fail("sequence ", s, " token ", i, " has id ", seqs[s][i], ", outside the vocabulary [0, ", V, ")");
    total += seqs[s].size();
  }
  std::vector<float> out(total * size_t(V));
  std::mutex m;
  std::condition_variable done_cv;
  bool done = false;
  std::string error;
  auto job = [&] {
    try {
      // As many sequences per forward as the free blocks allow (the running requests keep theirs).
      size_t s = 0, row = 0;
      while (s < seqs.size()) {
        std::vector<SeqCache> caches;
        caches.reserve(seqs.size() - s);
        size_t e = s;
        for (; e < seqs.size(); ++e) {
          SeqCache sc;
          if (!sc.reserve(*I.kv, int64_t(seqs[e].size()))) {
            I.prefix->evict(I.kv->n_blocks());
            if (!sc.reserve(*I.kv, int64_t(seqs[e].size()))) break;
          }
          caches.push_back(std::move(sc));
        }
        if (e == s) fail("the KV cache has no room to score a sequence of ", seqs[s].size(), " tokens right now");
        Batch b;
        for (size_t j = s; j < e; ++j) {
          b.seqs.push_back(&caches[j - s]);
          for (size_t i = 0; i < seqs[j].size(); ++i) b.add(seqs[j][i], int32_t(i), int32_t(j - s), true);
        }
        try {
          I.model->forward(b, *I.kv, out.data() + row * size_t(V));
        } catch (...) {
          for (auto& c : caches) c.clear(*I.kv);
          throw;
        }
        for (auto& c : caches) c.clear(*I.kv);
        row += b.size();
        s = e;
      }
    } catch (const std::exception& ex) {
      error = ex.what();
    }
    std::lock_guard<std::mutex> lock(m);
    done = true;
    done_cv.notify_one();
  };
  {
    std::lock_guard<std::mutex> lock(I.mu);
    if (I.stopping) fail("the engine is shutting down");
    I.jobs.push_back(job);
  }
  I.cv.notify_all();
  std::unique_lock<std::mutex> lock(m);
  done_cv.wait(lock, [&] { return done; });
  if (!error.empty()) fail(error);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Accessors
// ---------------------------------------------------------------------------------------------------------------
const ModelConfig& Engine::config() const { return impl_->model->config(); }
const Tokenizer* Engine::tokenizer() const { return impl_->tok.get(); }
Model& Engine::model() { return *impl_->model; }
const EngineOptions& Engine::options() const { return impl_->opt; }
int64_t Engine::max_context() const { return impl_->model->max_context(); }
std::vector<int32_t> Engine::eos_ids() const { return impl_->eos; }

SamplingParams Engine::default_sampling() const {
  SamplingParams p;
  apply_generation_config(p, impl_->generation_config);
  return p;
}

std::string Engine::model_name() const {
  std::string d = impl_->opt.model_dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return std::filesystem::path(d).filename().string();
}

std::vector<int32_t> Engine::tokenize(const std::string& text, bool add_special_tokens) const {
  if (!impl_->tok) fail(impl_->opt.model_dir, ": this model folder has no tokenizer.json (give token ids instead)");
  return impl_->tok->encode(text, add_special_tokens);
}

std::string Engine::detokenize(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  if (!impl_->tok) fail(impl_->opt.model_dir, ": this model folder has no tokenizer.json");
  return impl_->tok->decode(ids, skip_special_tokens);
}

std::string Engine::apply_chat_template(const std::string& messages_json, bool add_generation_prompt,
                                        const std::string& extra_context_json) const {
  const Impl& I = *impl_;
  if (!I.chat_template) fail(I.opt.model_dir, ": this model folder has no chat template");
  json::Value ctx = json::parse(extra_context_json, "chat template context");
  if (!ctx.is_object()) fail("the chat template context must be a JSON object");
  ctx.set("messages", json::parse(messages_json, "messages"));
  ctx.set("add_generation_prompt", add_generation_prompt);
  ctx.set("bos_token", I.tok->bos_token());
  ctx.set("eos_token", I.tok->eos_token());
  return I.chat_template->render(ctx);
}

void Engine::set_check(bool on) {
  Impl& I = *impl_;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    if (I.stopping) return;
    // The model belongs to the engine thread: the switch happens there, between steps.
    I.jobs.push_back([&I, on] { I.model->set_check(on); });
  }
  I.cv.notify_all();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

std::string Engine::memory_plan() const {
  const Impl& I = *impl_;
  const double MB = 1e6;
  return cat("weights ", I.model->weight_bytes() / MB, " MB, KV cache ", I.kv->total_bytes() / MB, " MB (",
             I.kv->n_blocks(), " blocks x ", I.kv->block_size(), " tokens, ",
             KVCache::bytes_per_token(I.model->config(), I.be->kv_dtype()), " bytes/token), activations ",
             I.model->arena_bytes() / MB, " MB, on ", I.be->name());
}

}  // namespace mmfp4
