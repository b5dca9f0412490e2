#include "format/quantize_model.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <unordered_map>

#include "core/error.h"
#include "core/half.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "format/checkpoint.h"
#include "format/hadamard.h"
#include "format/model_folder.h"
#include "format/safetensors.h"
#include "format/weight_layout.h"

namespace mmfp4 {

std::string keep_reason(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                        const QuantizeOptions& opt) {
  if (shape.size() != 2) return cat(shape.size(), "-D");
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16) return cat("dtype ", dtype_name(dtype));
  std::string lower = name;
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("weight") == std::string::npos) return "not a weight";
  for (const char* p : {"embed", "norm", "lm_head", "output", "bias", "router"})
    if (lower.find(p) != std::string::npos) return cat("name contains '", p, "'");
  return quantize_unsupported_reason(shape[1], opt);
}

namespace {

// One tensor of an output shard and where its bytes come from.
struct OutTensor {
  enum Kind { Codes, Scales, GroupSize, HadamardBlock, Dense } kind;
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const TensorInfo* src;
};

// True when every BF16 value of t has a finite F16 rounding (then it is written as F16, as metal-marlin does).
bool bf16_fits_f16(const TensorInfo& t) {
  for (size_t i = 0; i < t.nbytes / 2; ++i) {
    uint16_t h;
    std::memcpy(&h, t.data + 2 * i, 2);
    const float v = bf16_to_f32(h);
    if (std::isfinite(v) && !std::isfinite(f16_to_f32(f32_to_f16(v)))) return false;
  }
  return true;
}

void write_dense(SafetensorsWriter& w, const TensorInfo& t, DType out) {
  if (out == t.dtype) {
    w.write(t.data, t.nbytes);
    return;
  }
  MMFP4_ASSERT(t.dtype == DType::BF16 && out == DType::F16);
  std::vector<uint16_t> buf;  // a chunk of converted values
  const size_t n = t.nbytes / 2, chunk = size_t(1) << 16;
  for (size_t b = 0; b < n; b += chunk) {
    buf.resize(std::min(chunk, n - b));
    for (size_t i = 0; i < buf.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * (b + i), 2);
      buf[i] = f32_to_f16(bf16_to_f32(h));
    }
    w.write(buf.data(), buf.size() * 2);
  }
}

}  // namespace

QuantizeModelReport quantize_model(const std::string& src, const std::string& dst, const QuantizeModelOptions& opt) {
  const QuantizeOptions& q = opt.quant;
  if (q.group_size <= 0 || q.group_size % 8 != 0)
    fail("group size ", q.group_size, " is not a positive multiple of 8");
  if (q.hadamard_block != 0 && !hadamard_block_valid(q.hadamard_block))
    fail("Hadamard block ", q.hadamard_block, " is not a power of two in [2, 65536]");
  auto ck = Checkpoint::open(src);
  for (const TensorInfo* t : ck->tensors())
    if (t->dtype == DType::U32 && find_mmfp4_scales(*ck, t->name))
      fail(src, ": already a quantized checkpoint (", t->describe(), " holds packed codes)");
  prepare_output_folder(src, dst, opt.force);

  QuantizeModelReport report;
  const int64_t total = int64_t(ck->tensors().size());
  int64_t done = 0;
  const bool indexed = file_exists(src + "/model.safetensors.index.json") || ck->files().size() > 1;
  std::vector<std::pair<std::string, std::string>> weight_map;
  int64_t tensor_bytes = 0;
  const int32_t group_size = q.group_size, block = q.hadamard_block;

  for (const auto& file : ck->files()) {
    const std::string shard = std::filesystem::path(file->path()).filename().string();
    // Plan the shard: every source tensor, by name, becomes codes + scales + siblings, or stays dense.
    std::vector<const TensorInfo*> srcs;
    for (const TensorInfo& t : file->tensors()) srcs.push_back(&t);
    std::sort(srcs.begin(), srcs.end(), [](const TensorInfo* a, const TensorInfo* b) { return a->name < b->name; });
    std::vector<OutTensor> outs;
    for (const TensorInfo* t : srcs) {
      if (keep_reason(t->name, t->dtype, t->shape, q).empty()) {
        const int64_t n = t->shape[0], ks = hadamard_padded(t->shape[1], block);
        outs.push_back({OutTensor::Codes, t->name, DType::U32, {n, ks / 8}, t});
        outs.push_back({OutTensor::Scales, t->name + ".scales", DType::F16, {n, ks / group_size}, t});
        outs.push_back({OutTensor::GroupSize, t->name + ".group_size", DType::I32, {1}, t});
        if (block) outs.push_back({OutTensor::HadamardBlock, t->name + ".hadamard_block_size", DType::I32, {1}, t});
        ++report.quantized;
        continue;
      }
      DType out = t->dtype;
      if (out == DType::BF16) {
        if (bf16_fits_f16(*t)) {
          out = DType::F16;
        } else {
          log_warn(t->describe(), ": a value exceeds the F16 range; kept as BF16");
          report.kept_as_bf16.push_back(t->name);
        }
      }
      outs.push_back({OutTensor::Dense, t->name, out, t->shape, t});
      ++report.kept;
    }
    std::vector<std::pair<std::string, DType>> keys;
    for (const OutTensor& o : outs) keys.emplace_back(o.name, o.dtype);
    const std::vector<size_t> order = writing_order(keys);

    SafetensorsWriter w(dst + "/" + shard);
    for (size_t i : order) w.declare(outs[i].name, outs[i].dtype, outs[i].shape);
    w.begin();
    // Codes (4-byte words) precede every F16 tensor in the file, so each weight is quantized once and its scales
    // wait in memory for their place.
    std::unordered_map<const TensorInfo*, std::vector<uint16_t>> pending_scales;
    for (size_t i : order) {
      const OutTensor& o = outs[i];
      const TensorInfo& t = *o.src;
      switch (o.kind) {
        case OutTensor::Codes: {
          QuantizedMatrix m = quantize_rtn(t.data, t.dtype, t.shape[0], t.shape[1], q, t.describe(),
                                           &ThreadPool::global());
          w.write(m.codes.data(), m.codes.size() * 4);
          pending_scales[&t] = std::move(m.scales);
          break;
        }
        case OutTensor::Scales: {
          auto it = pending_scales.find(&t);
          MMFP4_ASSERT(it != pending_scales.end());
          w.write(it->second.data(), it->second.size() * 2);
          pending_scales.erase(it);
          break;
        }
        case OutTensor::GroupSize: w.write(&group_size, 4); break;
        case OutTensor::HadamardBlock: w.write(&block, 4); break;
        case OutTensor::Dense: write_dense(w, t, o.dtype); break;
      }
      if (o.kind == OutTensor::Codes || o.kind == OutTensor::Dense) {
        report.source_bytes += int64_t(t.nbytes);
        if (opt.progress) opt.progress(++done, total, t.name);
      }
      int64_t bytes = int64_t(dtype_size(o.dtype));
      for (int64_t d : o.shape) bytes *= d;
      tensor_bytes += bytes;
      weight_map.emplace_back(o.name, shard);
    }
    w.finish();
    report.shards.push_back(shard);
    report.output_bytes += int64_t(std::filesystem::file_size(dst + "/" + shard));
  }

  if (indexed) {
    json::Value md = json::Value::object();
    md.set("format", "mmfp4");
    md.set("total_size", tensor_bytes);
    write_index(dst, md, std::move(weight_map));
  }
  json::Value qc = json::Value::object();
  qc.set("format", "mmfp4_e2m1_marlin");
  qc.set("group_size", group_size);
  qc.set("use_hadamard", block > 0);
  qc.set("hadamard_block_size", block > 0 ? block : 64);
  qc.set("method", "rtn");
  write_text_file(dst + "/quantization_config.json", json::dump_python(qc, false, 2) + "\n");
  report.copied = copy_side_files(src, dst, {"quantization_config.json", "quantization_report.json"});
  return report;
}

}  // namespace mmfp4
