// mmfp4 inspect DIR [--json]: what a model folder holds, whether it loads, and the memory it will need.
//
// The check is the loader's own: config.json through ModelConfig, then every tensor expected_tensors() lists
// through load_weight / load_vector with the shape the config implies, so every layout rule of docs/format.md
// applies. Problems are collected (not just the first) and the exit status is 1 if there is any.
#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "args.h"
#include "command.h"
#include "core/error.h"
#include "core/json.h"
#include "format/checkpoint.h"
#include "format/weight.h"
#include "format/weight_layout.h"
#include "model/config.h"
#include "model/manifest.h"

namespace mmfp4::cli {
namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

// ---- The memory plan: what the weights and the KV cache will take. Later layers (activation arena, KV pool for a
// configured batch and context) add their lines here. ---------------------------------------------------------------
struct MemoryPlan {
  int64_t weight_bytes = 0;           // every tensor the model uses, as stored (host or device memory alike)
  int64_t kv_bytes_per_token_16 = 0;  // BF16/F16 KV cache, all layers
  int64_t kv_bytes_per_token_32 = 0;  // F32 KV cache, all layers
  int64_t max_context = 0;            // max_position_embeddings
};

MemoryPlan plan_memory(const ModelConfig& cfg, int64_t weight_bytes) {
  MemoryPlan m;
  m.weight_bytes = weight_bytes;
  const int64_t values = cfg.kv_values_per_token_layer() * cfg.num_layers;
  m.kv_bytes_per_token_16 = values * 2;
  m.kv_bytes_per_token_32 = values * 4;
  m.max_context = cfg.max_position_embeddings;
  return m;
}

void print_memory_plan(const MemoryPlan& m) {
  std::printf("memory      weights %s (the host or device memory that holds them, as stored)\n",
              human_bytes(double(m.weight_bytes)).c_str());
  std::printf("            KV cache %lld bytes per token in BF16/F16, %lld in F32",
              static_cast<long long>(m.kv_bytes_per_token_16), static_cast<long long>(m.kv_bytes_per_token_32));
  if (m.max_context > 0)
    std::printf("; %s per sequence of %lld tokens (BF16)", human_bytes(double(m.kv_bytes_per_token_16 * m.max_context)).c_str(),
                static_cast<long long>(m.max_context));
  std::printf("\n");
}

json::Value memory_plan_json(const MemoryPlan& m) {
  json::Value j = json::Value::object();
  j.set("weights_bytes", m.weight_bytes);
  j.set("kv_bytes_per_token_f16", m.kv_bytes_per_token_16);
  j.set("kv_bytes_per_token_f32", m.kv_bytes_per_token_32);
  j.set("max_position_embeddings", m.max_context);
  j.set("kv_bytes_per_sequence_at_max_context_f16", m.kv_bytes_per_token_16 * m.max_context);
  return j;
}

// ---- What the folder holds --------------------------------------------------------------------------------------
struct Inventory {
  std::map<std::string, int64_t> by_dtype;            // tensor count per dtype
  int64_t mmfp4_weights = 0, mmfp4_aux = 0, dense = 0;  // codes; scales and siblings; everything else
  int64_t expert_banks = 0;                            // 3-D codes [E, N, K/8]
  int64_t rotated = 0;
  std::map<int64_t, int64_t> hadamard_blocks, group_sizes;  // value -> weights
};

// A sibling's value, or 0 when it is absent or malformed (the validation reports malformed ones).
int64_t scalar_sibling(const Checkpoint& ck, const std::string& name) {
  const TensorInfo* t = ck.find(name);
  if (!t) return 0;
  try {
    return read_scalar_int(*t);
  } catch (const Error&) {
    return 0;
  }
}

Inventory take_inventory(const Checkpoint& ck) {
  Inventory inv;
  std::set<std::string> aux;
  for (const TensorInfo* t : ck.tensors()) {
    ++inv.by_dtype[std::string(dtype_name(t->dtype))];
    if (t->dtype != DType::U32) continue;
    const TensorInfo* s = find_mmfp4_scales(ck, t->name);
    if (!s) continue;
    ++inv.mmfp4_weights;
    inv.expert_banks += t->shape.size() == 3;
    aux.insert(s->name);
    for (const char* suffix : {".group_size", ".hadamard_block_size"})
      if (ck.find(t->name + suffix)) aux.insert(t->name + suffix);
    if (int64_t b = scalar_sibling(ck, t->name + ".hadamard_block_size")) ++inv.rotated, ++inv.hadamard_blocks[b];
    if (int64_t g = scalar_sibling(ck, t->name + ".group_size")) ++inv.group_sizes[g];
  }
  inv.mmfp4_aux = int64_t(aux.size());
  inv.dense = int64_t(ck.tensors().size()) - inv.mmfp4_weights - inv.mmfp4_aux;
  return inv;
}

// ---- Whether it loads ------------------------------------------------------------------------------------------
struct Validation {
  int64_t expected = 0, present = 0;
  int64_t linear_mmfp4 = 0;
  std::vector<std::string> linear_dense;  // linear/embedding weights kept dense
  std::vector<std::string> problems;
  std::set<std::string> used;             // tensor names the model reads
  int64_t used_bytes = 0;
  std::vector<std::string> past_layers, unexpected;  // tensors nothing reads
};

// Layer index of "<prefix>layers.<i>.", or -1.
int64_t layer_of(const std::string& name, const std::string& prefix) {
  const std::string p = prefix + "layers.";
  if (name.rfind(p, 0) != 0) return -1;
  size_t i = p.size(), j = i;
  while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
  return j > i && j < name.size() && name[j] == '.' ? std::stoll(name.substr(i, j - i)) : -1;
}

Validation validate(const Checkpoint& ck, const ModelConfig& cfg, const QuantConfig& qc) {
  Validation v;
  auto use = [&](const std::string& name) {
    if (const TensorInfo* t = ck.find(name); t && v.used.insert(name).second) v.used_bytes += int64_t(t->nbytes);
  };
  // A weight and, when it is MMFP4, its scales and siblings.
  auto use_weight = [&](const std::string& name) {
    use(name);
    if (const TensorInfo* sc = find_mmfp4_scales(ck, name)) use(sc->name);
    use(name + ".group_size");
    use(name + ".hadamard_block_size");
  };
  for (const TensorSpec& s : expected_tensors(cfg)) {
    ++v.expected;
    if (!ck.find(s.name)) {
      if (!s.optional) v.problems.push_back(cat(ck.dir(), ": tensor '", s.name, "' is missing (expected ",
                                                shape_str(s.shape), ")"));
      continue;
    }
    ++v.present;
    use_weight(s.name);  // expected even when it turns out wrong: not "unused" as well
    try {
      if (s.role == TensorRole::Vector) {
        load_vector(ck, s.name, s.shape[0]);
        continue;
      }
      const HostWeight w = load_weight(ck, s.name, s.shape[0], s.shape[1], qc);
      if (w.format == WeightFormat::MMFP4)
        ++v.linear_mmfp4;
      else
        v.linear_dense.push_back(s.name);
    } catch (const Error& e) {
      v.problems.push_back(e.what());
    }
  }
  for (const TensorInfo* t : ck.tensors()) {
    if (v.used.count(t->name)) continue;
    (layer_of(t->name, cfg.weight_prefix) >= cfg.num_layers ? v.past_layers : v.unexpected).push_back(t->name);
  }
  return v;
}

json::Value counts_json(const std::map<int64_t, int64_t>& m) {
  json::Value j = json::Value::object();
  for (const auto& [k, n] : m) j.set(std::to_string(k), n);
  return j;
}

json::Value strings_json(const std::vector<std::string>& v) {
  json::Value j = json::Value::array();
  for (const std::string& s : v) j.push_back(s);
  return j;
}

std::string counts_text(const std::map<int64_t, int64_t>& m, const char* what) {
  std::string s;
  for (const auto& [k, n] : m) s += cat(s.empty() ? "" : ", ", what, " ", k, ": ", n);
  return s;
}

int run_inspect(const std::vector<std::string>& argv) {
  Args a("inspect", "mmfp4 inspect DIR [--json]");
  a.positional("DIR", "model folder (config.json + safetensors)");
  a.flag("--json", "print one JSON object instead of text");
  if (!a.parse(argv)) return 0;
  const std::string dir = a.pos("DIR");
  const bool as_json = a.get_flag("--json");

  std::unique_ptr<Checkpoint> ck;
  ModelConfig cfg;
  QuantConfig qc;
  try {
    ck = Checkpoint::open(dir);
    cfg = ModelConfig::load(dir);
    qc = QuantConfig::load(dir);
  } catch (const Error& e) {
    if (!as_json) throw;
    json::Value j = json::Value::object();
    j.set("path", dir);
    j.set("ok", false);
    j.set("problems", strings_json({e.what()}));
    std::printf("%s\n", json::dump_python(j, false, 2).c_str());
    return 1;
  }
  // Multimodal checkpoints keep the language model under another prefix (as the loader finds it).
  detect_weight_prefix(cfg, *ck);

  const Inventory inv = take_inventory(*ck);
  const Validation val = validate(*ck, cfg, qc);
  const MemoryPlan mem = plan_memory(cfg, val.used_bytes);
  const bool ok = val.problems.empty();

  if (as_json) {
    json::Value j = json::Value::object();
    j.set("path", dir);
    j.set("ok", ok);
    json::Value arch = json::Value::object();
    arch.set("model_type", cfg.model_type);
    arch.set("summary", cfg.summary());
    arch.set("num_layers", cfg.num_layers);
    arch.set("hidden_size", cfg.hidden_size);
    arch.set("vocab_size", cfg.vocab_size);
    j.set("architecture", std::move(arch));
    json::Value files = json::Value::array();
    for (const auto& f : ck->files()) {
      json::Value fj = json::Value::object();
      fj.set("path", f->path());
      fj.set("bytes", uint64_t(f->file_size()));
      fj.set("tensors", uint64_t(f->tensors().size()));
      files.push_back(std::move(fj));
    }
    j.set("files", std::move(files));
    j.set("bytes_on_disk", uint64_t(ck->total_bytes()));
    json::Value qj = json::Value::object();
    qj.set("present", qc.present);
    if (qc.present) {
      qj.set("format", qc.format);
      qj.set("group_size", qc.group_size);
      qj.set("use_hadamard", qc.use_hadamard);
      qj.set("hadamard_block_size", qc.hadamard_block_size);
    }
    j.set("quantization_config", std::move(qj));
    json::Value t = json::Value::object();
    t.set("total", uint64_t(ck->tensors().size()));
    json::Value bd = json::Value::object();
    for (const auto& [d, n] : inv.by_dtype) bd.set(d, n);
    t.set("by_dtype", std::move(bd));
    json::Value bf = json::Value::object();
    bf.set("mmfp4_weights", inv.mmfp4_weights);
    bf.set("mmfp4_scales_and_siblings", inv.mmfp4_aux);
    bf.set("dense", inv.dense);
    t.set("by_format", std::move(bf));
    j.set("tensors", std::move(t));
    json::Value qz = json::Value::object();
    qz.set("mmfp4_linear_weights", val.linear_mmfp4);
    qz.set("dense_linear_weights", strings_json(val.linear_dense));
    qz.set("expert_banks_3d", inv.expert_banks);
    qz.set("rotated", inv.rotated);
    qz.set("hadamard_block_sizes", counts_json(inv.hadamard_blocks));
    qz.set("group_sizes", counts_json(inv.group_sizes));
    j.set("quantization", std::move(qz));
    json::Value vj = json::Value::object();
    vj.set("expected_tensors", val.expected);
    vj.set("present", val.present);
    vj.set("problems", strings_json(val.problems));
    vj.set("unused_past_num_layers", strings_json(val.past_layers));
    vj.set("unused_unexpected", strings_json(val.unexpected));
    j.set("validation", std::move(vj));
    j.set("memory", memory_plan_json(mem));
    std::printf("%s\n", json::dump_python(j, false, 2).c_str());
    return ok ? 0 : 1;
  }

  std::printf("folder      %s (%zu safetensors file%s, %s on disk)\n", dir.c_str(), ck->files().size(),
              ck->files().size() == 1 ? "" : "s", human_bytes(double(ck->total_bytes())).c_str());
  std::printf("model       %s\n", cfg.summary().c_str());
  if (qc.present)
    std::printf("quant cfg   %s, group size %d, %s (quantization_config.json; per-tensor siblings decide)\n",
                qc.format.c_str(), qc.group_size,
                qc.use_hadamard ? cat("Hadamard block ", qc.hadamard_block_size).c_str() : "no rotation");
  std::string dt;
  for (const auto& [d, n] : inv.by_dtype) dt += cat(dt.empty() ? "" : ", ", d, " ", n);
  std::printf("tensors     %zu (%s)\n", ck->tensors().size(), dt.c_str());
  std::printf("formats     %lld MMFP4 weights (+%lld scale/sibling tensors), %lld dense tensors%s\n",
              static_cast<long long>(inv.mmfp4_weights), static_cast<long long>(inv.mmfp4_aux),
              static_cast<long long>(inv.dense),
              inv.expert_banks ? cat("; ", inv.expert_banks, " are 3-D expert banks").c_str() : "");
  std::printf("linear      %lld MMFP4, %zu dense", static_cast<long long>(val.linear_mmfp4), val.linear_dense.size());
  for (size_t i = 0; i < val.linear_dense.size() && i < 4; ++i)
    std::printf("%s%s", i ? ", " : " (", val.linear_dense[i].c_str());
  std::printf("%s\n", val.linear_dense.empty() ? "" : val.linear_dense.size() > 4 ? ", ...)" : ")");
  if (inv.mmfp4_weights) {
    std::printf("rotation    %lld rotated%s%s\n", static_cast<long long>(inv.rotated),
                inv.rotated ? " (" : "", inv.rotated ? (counts_text(inv.hadamard_blocks, "block") + ")").c_str() : "");
    std::printf("groups      %s\n",
                inv.group_sizes.empty() ? "no group_size siblings" : counts_text(inv.group_sizes, "size").c_str());
  }
  if (!val.past_layers.empty())
    std::printf("unused      %zu tensors of layers >= num_hidden_layers (%lld), e.g. %s: expected (such as GLM's "
                "MTP layer) and ignored\n",
                val.past_layers.size(), static_cast<long long>(cfg.num_layers), val.past_layers[0].c_str());
  if (!val.unexpected.empty()) {
    std::printf("unused      %zu tensors the architecture does not read:", val.unexpected.size());
    for (size_t i = 0; i < val.unexpected.size() && i < 8; ++i) std::printf(" %s", val.unexpected[i].c_str());
    std::printf("%s\n", val.unexpected.size() > 8 ? " ..." : "");
  }
  print_memory_plan(mem);
  if (ok) {
    std::printf("check       ok: all %lld tensors the architecture needs are present with the shapes config.json "
                "implies\n", static_cast<long long>(val.present));
    return 0;
  }
  std::fflush(stdout);
  std::fprintf(stderr, "check       %zu problem%s:\n", val.problems.size(), val.problems.size() == 1 ? "" : "s");
  for (size_t i = 0; i < val.problems.size() && i < 20; ++i) std::fprintf(stderr, "  %s\n", val.problems[i].c_str());
  if (val.problems.size() > 20) std::fprintf(stderr, "  ... and %zu more\n", val.problems.size() - 20);
  return 1;
}

}  // namespace

MMFP4_COMMAND("inspect", "describe and validate a model folder: architecture, tensors, quantization, memory",
              run_inspect);

}  // namespace mmfp4::cli
