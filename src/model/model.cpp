#include "model/model.h"

#include <algorithm>

#include "core/env.h"
#include "core/error.h"
#include "core/log.h"
#include "format/checkpoint.h"
#include "model/manifest.h"
#include "model/rope_table.h"

namespace mmfp4 {

Model::Model(const std::string& dir, Backend& be, const ModelConfig& cfg, const ModelOptions& opt)
    : dir_(dir), be_(be), cfg_(cfg), opt_(opt) {}

Model::~Model() {
  for (void* p : owned_) be_.release(p);
}

std::unique_ptr<Model> Model::load(const std::string& dir, Backend& be, const ModelOptions& opt_in) {
  ModelOptions opt = opt_in;
  opt.check = opt.check || env_bool("MMFP4_CHECK").value_or(false);
  opt.verbose = opt.verbose || log_enabled(LogLevel::Debug);
  if (opt.max_tokens <= 0) fail("max_tokens must be positive");
  if (opt.kv_block_size <= 0) fail("kv_block_size must be positive");

  ModelConfig cfg = ModelConfig::load(dir);
  const LayerBuilder build = find_architecture(cfg.model_type);
  if (!build) fail(dir, "/config.json: model_type '", cfg.model_type, "' has no registered architecture");
  auto ck = Checkpoint::open(dir);
  detect_weight_prefix(cfg, *ck);
  const QuantConfig qc = QuantConfig::load(dir);

  std::unique_ptr<Model> m(new Model(dir, be, cfg, opt));
  m->tracer_ = Tracer(opt.check, opt.verbose);
  m->max_context_ = opt.max_context > 0 ? opt.max_context : std::min<int64_t>(cfg.max_position_embeddings, 4096);
  const double t0 = now_seconds();

  LoadContext lc{m->cfg_, *ck, qc, be, m->owned_};
  m->embed_ = lc.linear(cfg.weight_prefix + "embed_tokens.weight", cfg.vocab_size, cfg.hidden_size);
  m->final_norm_ = lc.vector(cfg.weight_prefix + "norm.weight", cfg.hidden_size);
  if (!cfg.tie_word_embeddings || has_weight(*ck, "lm_head.weight"))
    m->lm_head_ = lc.linear("lm_head.weight", cfg.vocab_size, cfg.hidden_size);
  for (int64_t i = 0; i < cfg.num_layers; ++i) m->layers_.push_back(build(lc, i));
  m->weight_bytes_ = lc.weight_bytes;

  // Activation arena: the blocks run one at a time, so they share one region sized for the widest.
  const int64_t T = opt.max_tokens, H = cfg.hidden_size;
  int64_t region = 0;
  for (const auto& l : m->layers_) region = std::max({region, l.attn->scratch_width(), l.ffn->scratch_width()});
  const int64_t arena_floats = T * (3 * H + region + cfg.vocab_size);
  auto* arena = static_cast<float*>(be.alloc(size_t(arena_floats) * sizeof(float), "activation arena"));
  m->owned_.push_back(arena);
  m->arena_bytes_ = arena_floats * 4;
  m->x_ = arena;
  m->h_ = arena + T * H;
  m->sel_ = arena + 2 * T * H;
  float* region_base = arena + 3 * T * H;
  m->logits_ = region_base + T * region;
  for (auto& l : m->layers_) {
    l.attn->bind(region_base, T);
    l.ffn->bind(region_base, T);
  }
  // Batch metadata: tokens, positions, seq, slots, logit rows [T] each, then block tables [T, max_blocks].
  const int64_t max_blocks = (m->max_context_ + opt.kv_block_size - 1) / opt.kv_block_size;
  // After them, [T] argmax ids (forward_greedy).
  m->meta_ints_ = 5 * T + T * max_blocks + T;
  m->meta_ = static_cast<int32_t*>(be.alloc(size_t(m->meta_ints_) * 4, "batch metadata"));
  m->owned_.push_back(m->meta_);
  m->h_meta_.assign(size_t(m->meta_ints_), 0);

  // RoPE tables for every position of the context.
  HostRopeTable rt = build_rope_table(cfg.rope, m->max_context_);
  auto* rope_mem = static_cast<float*>(be.alloc(rt.cos.size() * 8, "RoPE tables"));
  m->owned_.push_back(rope_mem);
  be.upload(rope_mem, rt.cos.data(), rt.cos.size() * 4);
  be.upload(rope_mem + rt.cos.size(), rt.sin.data(), rt.sin.size() * 4);
  m->rope_ = RopeTable{rope_mem, rope_mem + rt.cos.size(), m->max_context_, rt.dim, cfg.rope.interleaved};
  // The backend's own per-step scratch, taken now so that no forward step allocates.
  WorkspacePlan plan;
  plan.max_tokens = T;
  plan.max_context = m->max_context_;
  plan.max_heads = cfg.num_heads;
  plan.max_kv_width = cfg.kv_values_per_token_layer();
  plan.mla = cfg.mla;
  plan.mla_rank = cfg.kv_lora_rank;
  plan.mla_nope = cfg.qk_nope_head_dim;
  plan.mla_v = cfg.v_head_dim;
  for (int64_t i = 0; i < cfg.num_layers; ++i)
    if (cfg.is_moe_layer(i)) plan.max_top_k = cfg.num_experts_per_tok + (cfg.n_shared_experts == 1 ? 1 : 0);
  be.reserve_workspace(plan);
  be.sync();
  log_info("loaded ", dir, " (", cfg.summary(), ") on ", be.name(), ": ", m->weight_bytes_ / 1e6, " MB of weights, ",
           m->arena_bytes_ / 1e6, " MB arena, in ", now_seconds() - t0, " s");
  return m;
}

void Model::validate(const Batch& b, const KVCache& kv) const {
  if (b.positions.size() != b.tokens.size() || b.seq.size() != b.tokens.size())
    fail("batch: tokens, positions and seq must have the same length");
  if (kv.block_size() != opt_.kv_block_size)
    fail("KV cache block size ", kv.block_size(), " differs from the model's ", opt_.kv_block_size);
  if (kv.n_layers() != cfg_.num_layers) fail("KV cache has ", kv.n_layers(), " layers, the model ", cfg_.num_layers);
  for (size_t i = 0; i < b.tokens.size(); ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= cfg_.vocab_size)
      fail("token id ", b.tokens[i], " at batch position ", i, " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
    if (b.positions[i] < 0 || b.positions[i] >= max_context_)
      fail("position ", b.positions[i], " at batch position ", i, " is outside the context of ", max_context_,
           " tokens");
    if (b.seq[i] < 0 || size_t(b.seq[i]) >= b.seqs.size() || !b.seqs[size_t(b.seq[i])])
      fail("batch position ", i, " names sequence ", b.seq[i], " of ", b.seqs.size());
    const SeqCache& sc = *b.seqs[size_t(b.seq[i])];
    if (size_t(b.positions[i] / kv.block_size()) >= sc.blocks.size())
      fail("sequence ", b.seq[i], " has no KV cache block for position ", b.positions[i], " (reserve it first)");
  }
  for (int32_t r : b.logit_rows)
    if (r < 0 || size_t(r) >= b.tokens.size()) fail("logit row ", r, " is outside the batch");
}

void Model::forward(const Batch& b, KVCache& kv, float* logits) { forward_impl(b, kv, logits, nullptr); }

void Model::forward_greedy(const Batch& b, KVCache& kv, int32_t* ids) { forward_impl(b, kv, nullptr, ids); }

void Model::forward_impl(const Batch& b, KVCache& kv, float* logits, int32_t* ids) {
  validate(b, kv);
  size_t logit_base = 0;
  for (size_t begin = 0; begin < b.size(); begin += size_t(opt_.max_tokens)) {
    const size_t end = std::min(b.size(), begin + size_t(opt_.max_tokens));
    run_chunk(b, begin, end, kv, logits, ids, logit_base);
    for (int32_t r : b.logit_rows) logit_base += (size_t(r) >= begin && size_t(r) < end) ? 1 : 0;
  }
}

int64_t Model::graph_bucket(int64_t T) const {
  int64_t b = 1;
  while (b < T) b <<= 1;
  return std::min({b, opt_.graph_max_tokens, opt_.max_tokens});
}

void Model::run_chunk(const Batch& b, size_t begin, size_t end, KVCache& kv, float* logits, int32_t* ids,
                      size_t logit_base) {
  const int64_t T = int64_t(end - begin), Tmax = opt_.max_tokens, V = cfg_.vocab_size;
  // Host metadata: the chunk's sequences get local indices 0..n_seqs-1.
  int32_t* hm = h_meta_.data();
  int32_t *h_tok = hm, *h_pos = hm + Tmax, *h_seq = hm + 2 * Tmax, *h_slot = hm + 3 * Tmax, *h_rows = hm + 4 * Tmax,
          *h_bt = hm + 5 * Tmax;
  int64_t n_rows = 0;
  for (int32_t r : b.logit_rows)
    if (size_t(r) >= begin && size_t(r) < end) h_rows[n_rows++] = int32_t(size_t(r) - begin);
  // A decode-like step (every token wants logits) replays a recorded graph of its bucket size: the padding tokens
  // (token 0 at position 0 of sequence 0, negative slot: nothing stored) and padding logit rows are computed and
  // dropped, and block tables use the fixed stride of the whole context.
  const int64_t cap = (max_context_ + opt_.kv_block_size - 1) / opt_.kv_block_size;
  const bool graph = be_.supports_graphs() && !tracer_.enabled() && opt_.graph_max_tokens > 0 &&
                     T <= std::min(opt_.graph_max_tokens, Tmax) && n_rows == T;
  const int64_t Tb = graph ? graph_bucket(T) : T;
  std::vector<int32_t> local(b.seqs.size(), -1);
  std::vector<const SeqCache*> seqs;
  for (int64_t t = 0; t < T; ++t) {
    const size_t i = begin + size_t(t);
    int32_t& l = local[size_t(b.seq[i])];
    if (l < 0) {
      l = int32_t(seqs.size());
      seqs.push_back(b.seqs[size_t(b.seq[i])]);
    }
    h_tok[t] = b.tokens[i];
    h_pos[t] = b.positions[i];
    h_seq[t] = l;
    const SeqCache& sc = *seqs[size_t(l)];
    h_slot[t] = int32_t(sc.blocks[size_t(b.positions[i] / kv.block_size())] * kv.block_size() +
                        b.positions[i] % kv.block_size());
  }
  for (int64_t t = T; t < Tb; ++t) {
    h_tok[t] = 0;
    h_pos[t] = 0;
    h_seq[t] = 0;
    h_slot[t] = -1;
    h_rows[t] = 0;
  }
  int64_t max_blocks = 1;
  for (const SeqCache* s : seqs) max_blocks = std::max<int64_t>(max_blocks, int64_t(s->blocks.size()));
  max_blocks = std::min(max_blocks, cap);  // positions are < max_context, so later blocks are never read
  if (graph) max_blocks = cap;
  for (size_t s = 0; s < seqs.size(); ++s)
    for (int64_t j = 0; j < max_blocks; ++j)
      h_bt[int64_t(s) * max_blocks + j] = j < int64_t(seqs[s]->blocks.size()) ? seqs[s]->blocks[size_t(j)] : -1;
  int32_t max_pos = 0;
  for (int64_t t = 0; t < T; ++t) max_pos = std::max(max_pos, h_pos[t]);
  be_.upload(meta_, hm, size_t(5 * Tmax + int64_t(seqs.size()) * max_blocks) * 4);

  BatchMeta m;
  m.n_tokens = Tb;
  m.tokens = meta_;
  m.positions = meta_ + Tmax;
  m.seq = meta_ + 2 * Tmax;
  m.slots = meta_ + 3 * Tmax;
  m.n_seqs = int64_t(seqs.size());
  m.block_tables = meta_ + 5 * Tmax;
  m.max_blocks = max_blocks;
  m.max_position = max_pos;
  m.h_positions = h_pos;
  m.h_seq = h_seq;
  m.h_slots = h_slot;
  m.h_block_tables = h_bt;

  if (graph) {
    be_.replay_graph(graph_for(m, kv));
  } else {
    run_ops(m, kv, n_rows);
    if (n_rows == 0) {
      be_.sync();
      return;
    }
  }
  if (ids) {
    int32_t* d_ids = meta_ + meta_ints_ - Tmax;
    be_.argmax_rows(Act(logits_, n_rows, V), d_ids);
    be_.download(ids + logit_base, d_ids, size_t(n_rows) * 4);
    return;
  }
  be_.download(logits + logit_base * size_t(V), logits_, size_t(n_rows * V) * 4);
}

void Model::run_ops(const BatchMeta& m, KVCache& kv, int64_t n_rows) {
  const int64_t T = m.n_tokens, Tmax = opt_.max_tokens, H = cfg_.hidden_size, V = cfg_.vocab_size;
  Tracer* tr = tracer_.enabled() ? &tracer_ : nullptr;
  if (tr) tr->begin(be_);
  Act x(x_, T, H), h(h_, T, H);
  be_.embed(*embed_, m, x);
  if (tr) tr->after_global(be_, m, "embed", x);
  ForwardContext ctx{be_, cfg_, m, kv, rope_, 0, tr};
  for (size_t l = 0; l < layers_.size(); ++l) {
    ctx.layer = int64_t(l);
    be_.rmsnorm(x, layers_[l].input_norm, float(cfg_.rms_norm_eps), h);
    layers_[l].attn->forward(ctx, h, x);
    be_.rmsnorm(x, layers_[l].post_attention_norm, float(cfg_.rms_norm_eps), h);
    layers_[l].ffn->forward(ctx, h, x);
  }
  if (n_rows == 0) return;
  Act sel(sel_, n_rows, H), lg(logits_, n_rows, V);
  be_.gather_rows(x, meta_ + 4 * Tmax, n_rows, sel);
  be_.rmsnorm(sel, final_norm_, float(cfg_.rms_norm_eps), sel);
  be_.linear(sel, lm_head_ ? *lm_head_ : *embed_, lg, false);
  if (tr) tr->after_global(be_, m, "lm_head", lg);
}

StepGraph& Model::graph_for(const BatchMeta& m, KVCache& kv) {
  // Graphs hold the cache's layer pointers: another cache (or a new one at the same address) invalidates them.
  std::vector<void*> layers;
  for (int64_t i = 0; i < kv.n_layers(); ++i) layers.push_back(kv.layer(i).data);
  if (layers != graph_kv_) {
    graphs_.clear();
    graph_kv_ = layers;
  }
  std::unique_ptr<StepGraph>& g = graphs_[m.n_tokens];
  if (!g) {
    be_.begin_graph();
    try {
      run_ops(m, kv, m.n_tokens);
    } catch (...) {
      try {
        be_.end_graph();
      } catch (...) {
      }
      throw;
    }
    g = be_.end_graph();
    if (!g) fail("the backend recorded no step graph");
  }
  return *g;
}

void Model::warm_up(KVCache& kv) {
  std::vector<float> logits(static_cast<size_t>(vocab_size()));
  {
    SeqCache sc;
    if (!sc.reserve(kv, 2)) fail("warm-up: the KV cache has no room for 2 tokens");
    Batch b;
    b.seqs.push_back(&sc);
    b.add(0, 0, 0, true);
    forward(b, kv, logits.data());
    Batch d;
    d.seqs.push_back(&sc);
    d.add(0, 1, 0, true);
    forward(d, kv, logits.data());
    sc.clear(kv);
  }
  // H100, full-size GLM-4.7-Flash, page cache dropped: the first 2,048-token prefill after load took 1.03-1.04x the
  // steady time without this step, 1.00-1.01x with it (docs/cuda.md, twentieth session).
  const int64_t n = std::min(opt_.max_tokens, max_context_);
  if (be_.is_cpu() || n <= 2) return;
  SeqCache sc;
  if (!sc.reserve(kv, n)) return;  // a cache smaller than one step: its requests cannot run such a step either
  Batch b;
  b.seqs.push_back(&sc);
  for (int64_t p = 0; p < n; ++p) b.add(int32_t(p * 7919 % vocab_size()), int32_t(p), 0, p + 1 == n);  // varied ids
  forward(b, kv, logits.data());
  sc.clear(kv);
}

void Model::prepare_graphs(KVCache& kv) {
  if (!be_.supports_graphs() || opt_.graph_max_tokens <= 0) return;
  const int64_t Tmax = opt_.max_tokens, cap = (max_context_ + opt_.kv_block_size - 1) / opt_.kv_block_size;
  for (int64_t t = 1;; t <<= 1) {
    const int64_t Tb = graph_bucket(t);
    BatchMeta m;  // only sizes and device pointers matter for recording
    m.n_tokens = Tb;
    m.tokens = meta_;
    m.positions = meta_ + Tmax;
    m.seq = meta_ + 2 * Tmax;
    m.slots = meta_ + 3 * Tmax;
    m.n_seqs = Tb;
    m.block_tables = meta_ + 5 * Tmax;
    m.max_blocks = cap;
    graph_for(m, kv);
    if (Tb >= std::min(opt_.graph_max_tokens, Tmax)) break;
  }
}

}  // namespace mmfp4
