// mmfp4._mmfp4._Engine: include/mmfp4/engine.h for Python. Every call that computes releases the GIL; every
// mmfp4::Error becomes mmfp4.Error with the engine's message (module.cpp). The transformers-like surface (input
// shapes, padding, kwargs) is the pure-Python layer's job (python/mmfp4/).
#include "engine_bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "core/error.h"
#include "gil.h"
#include "mmfp4/engine.h"
#include "model/config.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace py = pybind11;

namespace mmfp4::python {
namespace {

using IdArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

// A std::vector handed to NumPy without a copy: the capsule owns it.
py::array_t<float> as_numpy(std::vector<float>&& v, int64_t rows, int64_t cols) {
  auto* owned = new std::vector<float>(std::move(v));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  return py::array_t<float>({rows, cols}, {cols * int64_t(sizeof(float)), int64_t(sizeof(float))}, owned->data(),
                            owner);
}

const char* rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::Linear: return "linear";
    case RopeType::Dynamic: return "dynamic";
    case RopeType::Yarn: return "yarn";
    case RopeType::Llama3: return "llama3";
    default: return "default";
  }
}

// The parsed config.json under transformers' names, plus what the engine planned (model.config in Python).
py::dict config_dict(Engine& e) {
  const ModelConfig& c = e.config();
  py::dict d;
  d["model_type"] = c.model_type;
  d["summary"] = c.summary();
  d["vocab_size"] = c.vocab_size;
  d["hidden_size"] = c.hidden_size;
  d["num_hidden_layers"] = c.num_layers;
  d["num_attention_heads"] = c.num_heads;
  d["num_key_value_heads"] = c.num_kv_heads;
  d["head_dim"] = c.q_head_dim();
  d["intermediate_size"] = c.intermediate_size;
  d["rms_norm_eps"] = c.rms_norm_eps;
  d["tie_word_embeddings"] = c.tie_word_embeddings;
  d["attention_bias"] = c.attention_bias;
  d["qk_norm"] = c.qk_norm;
  d["max_position_embeddings"] = c.max_position_embeddings;
  d["rope_theta"] = c.rope.theta;
  d["rope_type"] = rope_type_name(c.rope.type);
  d["rope_scaling_factor"] = c.rope.factor;
  d["rotary_dim"] = c.rope.dim;
  d["eos_token_id"] = c.eos_token_ids;
  d["bos_token_id"] = c.bos_token_id >= 0 ? py::object(py::int_(c.bos_token_id)) : py::object(py::none());
  d["mla"] = c.mla;
  if (c.mla) {
    d["q_lora_rank"] = c.q_lora_rank;
    d["kv_lora_rank"] = c.kv_lora_rank;
    d["qk_nope_head_dim"] = c.qk_nope_head_dim;
    d["qk_rope_head_dim"] = c.qk_rope_head_dim;
    d["v_head_dim"] = c.v_head_dim;
  }
  py::list types;
  for (FfnKind k : c.layer_ffn) types.append(k == FfnKind::MoE ? "sparse" : "dense");
  d["mlp_layer_types"] = types;
  if (c.n_routed_experts > 0) {
    d["n_routed_experts"] = c.n_routed_experts;
    d["num_experts_per_tok"] = c.num_experts_per_tok;
    d["moe_intermediate_size"] = c.moe_intermediate_size;
    d["n_shared_experts"] = c.n_shared_experts;
    d["n_group"] = c.n_group;
    d["topk_group"] = c.topk_group;
    d["norm_topk_prob"] = c.norm_topk_prob;
    d["routed_scaling_factor"] = c.routed_scaling_factor;
    d["router"] = c.router == RouterKind::Sigmoid ? "sigmoid" : "softmax";
  }
  // The engine's plan: fixed at load, all memory allocated up front.
  const EngineOptions& o = e.options();
  d["max_context"] = e.max_context();
  d["max_batch"] = o.max_batch;
  d["max_batch_tokens"] = o.max_batch_tokens;
  d["kv_blocks"] = e.stats().kv_blocks_total;
  d["prefix_caching"] = o.prefix_caching;
  d["device"] = e.model().backend().name();
  d["weight_bytes"] = e.model().weight_bytes();
  d["activation_bytes"] = e.model().arena_bytes();
  d["memory_plan"] = e.memory_plan();
  return d;
}

py::dict stats_dict(const EngineStats& s) {
  py::dict d;
  d["requests_total"] = s.requests_total;
  d["requests_running"] = s.requests_running;
  d["requests_waiting"] = s.requests_waiting;
  d["requests_rejected"] = s.requests_rejected;
  d["prompt_tokens_total"] = s.prompt_tokens_total;
  d["generated_tokens_total"] = s.generated_tokens_total;
  d["cached_prompt_tokens_total"] = s.cached_prompt_tokens_total;
  d["preemptions_total"] = s.preemptions_total;
  d["steps_total"] = s.steps_total;
  d["kv_blocks_total"] = s.kv_blocks_total;
  d["kv_blocks_used"] = s.kv_blocks_used;
  d["busy_seconds"] = s.busy_seconds;
  return d;
}

py::dict tokenizer_dict(const Tokenizer& t) {
  py::dict d;
  d["vocab_size"] = t.vocab_size();
  d["bos_token_id"] = t.bos_id();
  d["eos_token_id"] = t.eos_id();
  d["bos_token"] = t.bos_token().empty() ? py::object(py::none()) : py::object(py::str(t.bos_token()));
  d["eos_token"] = t.eos_token().empty() ? py::object(py::none()) : py::object(py::str(t.eos_token()));
  return d;
}

const Tokenizer& need_tokenizer(const Engine& e) {
  if (!e.tokenizer()) fail(e.options().model_dir, ": this model folder has no tokenizer.json");
  return *e.tokenizer();
}

}  // namespace

void bind_engine(py::module_& m) {
  const EngineOptions defaults;
  py::class_<Engine, std::shared_ptr<Engine>>(m, "_Engine", "mmfp4::Engine (include/mmfp4/engine.h)")
      .def_static(
          "open",
          [](const std::string& path, const std::string& device, int threads, int64_t max_batch,
             int64_t max_context, int64_t max_batch_tokens, int64_t kv_blocks, int64_t max_queue,
             bool prefix_caching, bool check, bool verbose) {
            EngineOptions o;
            o.model_dir = path;
            o.device = device;
            o.threads = threads;
            o.max_batch = max_batch;
            o.max_context = max_context;
            o.max_batch_tokens = max_batch_tokens;
            o.kv_blocks = kv_blocks;
            o.max_queue = max_queue;
            o.prefix_caching = prefix_caching;
            o.check = check;
            o.verbose = verbose;
            if (o.threads < 0) fail("threads must not be negative, got ", o.threads);
            if (o.max_context < 0) fail("max_context must not be negative, got ", o.max_context);
            if (o.kv_blocks < 0) fail("kv_blocks must not be negative, got ", o.kv_blocks);
            ReleasedGil nogil;
            return std::shared_ptr<Engine>(Engine::open(o));
          },
          py::arg("path"), py::arg("device") = defaults.device, py::arg("threads") = defaults.threads,
          py::arg("max_batch") = defaults.max_batch, py::arg("max_context") = defaults.max_context,
          py::arg("max_batch_tokens") = defaults.max_batch_tokens, py::arg("kv_blocks") = defaults.kv_blocks,
          py::arg("max_queue") = defaults.max_queue, py::arg("prefix_caching") = defaults.prefix_caching,
          py::arg("check") = defaults.check, py::arg("verbose") = defaults.verbose)
      .def(
          "score",
          [](Engine& e, const std::vector<IdArray>& seqs) {
            std::vector<std::vector<int32_t>> ids;
            for (const IdArray& a : seqs) {
              if (a.ndim() != 1) fail("each sequence must be 1-D token ids, got ", a.ndim(), " dimensions");
              ids.emplace_back(a.data(), a.data() + a.size());
            }
            int64_t rows = 0;
            for (const auto& s : ids) rows += int64_t(s.size());
            std::vector<float> out;
            {
              ReleasedGil nogil;
              out = e.score(ids);
            }
            return as_numpy(std::move(out), rows, e.config().vocab_size);
          },
          py::arg("seqs"), "Logits at every position of each sequence: [sum of lengths, vocab] float32.")
      .def("set_check", &Engine::set_check, py::arg("on"))
      .def("shutdown",
           [](Engine& e) {
             ReleasedGil nogil;
             e.shutdown();
           })
      .def(
          "tokenize",
          [](const Engine& e, const std::string& text, bool add_special_tokens) {
            const Tokenizer& t = need_tokenizer(e);
            ReleasedGil nogil;
            return t.encode(text, add_special_tokens);
          },
          py::arg("text"), py::arg("add_special_tokens") = true)
      .def(
          "detokenize",
          [](const Engine& e, const IdArray& ids, bool skip_special_tokens) {
            const Tokenizer& t = need_tokenizer(e);
            if (ids.ndim() != 1) fail("decode takes 1-D token ids, got ", ids.ndim(), " dimensions");
            std::vector<int32_t> v(ids.data(), ids.data() + ids.size());
            ReleasedGil nogil;
            return t.decode(v, skip_special_tokens);
          },
          py::arg("ids"), py::arg("skip_special_tokens") = true)
      .def("apply_chat_template", &Engine::apply_chat_template, py::arg("messages_json"),
           py::arg("add_generation_prompt") = true, py::arg("extra_context_json") = "{}")
      .def("token_to_id",
           [](const Engine& e, const std::string& token) { return need_tokenizer(e).token_to_id(token); })
      .def("id_to_token", [](const Engine& e, int32_t id) { return need_tokenizer(e).id_to_token(id); })
      .def_property_readonly("has_tokenizer", [](const Engine& e) { return e.tokenizer() != nullptr; })
      .def_property_readonly("tokenizer_info", [](const Engine& e) { return tokenizer_dict(need_tokenizer(e)); })
      .def_property_readonly("config", &config_dict)
      .def_property_readonly("stats", [](const Engine& e) { return stats_dict(e.stats()); })
      .def_property_readonly("eos_ids", &Engine::eos_ids)
      .def_property_readonly("default_sampling", [](const Engine& e) { return e.default_sampling(); })
      .def_property_readonly("vocab_size", [](const Engine& e) { return e.config().vocab_size; })
      .def_property_readonly("max_context", &Engine::max_context)
      .def_property_readonly("model_name", &Engine::model_name)
      .def_property_readonly("path", [](const Engine& e) { return e.options().model_dir; });
}

}  // namespace mmfp4::python
