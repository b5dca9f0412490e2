#include "format/dequantize_model.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "core/json.h"
#include "core/mapped_file.h"
#include "format/checkpoint.h"
#include "format/model_folder.h"
#include "format/safetensors.h"
#include "format/weight.h"
#include "format/weight_layout.h"

namespace mmfp4 {

namespace {

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Writes `count` float32 values as `out` (F32 or BF16).
void write_floats(SafetensorsWriter& w, const float* v, size_t count, DType out, std::vector<uint16_t>& scratch) {
  if (out == DType::F32) {
    w.write(v, count * 4);
    return;
  }
  scratch.resize(count);
  for (size_t i = 0; i < count; ++i) scratch[i] = f32_to_bf16(v[i]);
  w.write(scratch.data(), count * 2);
}

struct OutTensor {
  const TensorInfo* src;
  bool mmfp4;
  HostWeight weight;  // when mmfp4
  DType dtype;
  std::vector<int64_t> shape;
};

}  // namespace

DequantizeModelReport dequantize_model(const std::string& src, const std::string& dst,
                                       const DequantizeModelOptions& opt) {
  if (opt.dtype != DType::F32 && opt.dtype != DType::BF16)
    fail("cannot dequantize to ", dtype_name(opt.dtype), " (F32 or BF16)");
  auto ck = Checkpoint::open(src);
  const QuantConfig qc = QuantConfig::load(src);
  // The MMFP4 weights of the whole checkpoint, and the tensors that only describe them (their scales may sit in
  // another shard than their codes).
  std::set<std::string> aux;
  for (const TensorInfo* t : ck->tensors()) {
    if (t->dtype != DType::U32) continue;
    const TensorInfo* s = find_mmfp4_scales(*ck, t->name);
    if (!s) continue;
    aux.insert(s->name);
    aux.insert(t->name + ".group_size");
    aux.insert(t->name + ".hadamard_block_size");
  }
  prepare_output_folder(src, dst, opt.force);

  DequantizeModelReport report;
  int64_t total = 0, done = 0, tensor_bytes = 0;
  for (const TensorInfo* t : ck->tensors()) total += !aux.count(t->name);
  std::vector<std::pair<std::string, std::string>> weight_map;
  const bool indexed = file_exists(src + "/model.safetensors.index.json") || ck->files().size() > 1;

  for (const auto& file : ck->files()) {
    const std::string shard = std::filesystem::path(file->path()).filename().string();
    std::vector<OutTensor> outs;
    for (const TensorInfo& t : file->tensors()) {
      if (aux.count(t.name)) continue;
      OutTensor o{&t, false, {}, t.dtype, t.shape};
      if (t.dtype == DType::U32 && find_mmfp4_scales(*ck, t.name)) {
        if (t.shape.size() != 2) fail(t.describe(), ": 3-D MMFP4 expert banks cannot be dequantized yet");
        int64_t n = 0, k = 0;
        if (!(opt.logical_shape && opt.logical_shape(t.name, n, k))) {
          // From the stored shape: [n, k/8], or [k/8, n] as metal-marlin's "marlin_fp4" writer stores it.
          const bool transposed = qc.format == "marlin_fp4";
          n = t.shape[transposed ? 1 : 0];
          k = 8 * t.shape[transposed ? 0 : 1];
        }
        o.mmfp4 = true;
        o.weight = load_weight(*ck, t.name, n, k, qc);
        o.dtype = opt.dtype;
        o.shape = {n, k};
      } else if (is_float(t.dtype)) {
        o.dtype = opt.dtype;
      }
      outs.push_back(std::move(o));
    }
    std::vector<std::pair<std::string, DType>> keys;
    for (const OutTensor& o : outs) keys.emplace_back(o.src->name, o.dtype);
    const std::vector<size_t> order = writing_order(keys);

    SafetensorsWriter w(dst + "/" + shard);
    for (size_t i : order) w.declare(outs[i].src->name, outs[i].dtype, outs[i].shape);
    w.begin();
    std::vector<float> buf;       // one row, or one chunk of a dense tensor
    std::vector<uint16_t> scratch;
    for (size_t i : order) {
      const OutTensor& o = outs[i];
      const TensorInfo& t = *o.src;
      if (o.mmfp4) {
        buf.resize(size_t(o.weight.k));
        for (int64_t r = 0; r < o.weight.n; ++r) {
          o.weight.dequantize_row(r, buf.data());
          write_floats(w, buf.data(), buf.size(), o.dtype, scratch);
        }
        ++report.dequantized;
      } else if (is_float(t.dtype) && o.dtype != t.dtype) {
        const size_t n = size_t(t.numel()), chunk = size_t(1) << 16, es = dtype_size(t.dtype);
        for (size_t b = 0; b < n; b += chunk) {
          buf.resize(std::min(chunk, n - b));
          dense_row_to_f32(t.data + b * es, t.dtype, 0, int64_t(buf.size()), buf.data());
          write_floats(w, buf.data(), buf.size(), o.dtype, scratch);
        }
        ++report.converted;
      } else {
        w.write(t.data, t.nbytes);
        ++(is_float(t.dtype) ? report.converted : report.copied);
      }
      int64_t bytes = int64_t(dtype_size(o.dtype));
      for (int64_t d : o.shape) bytes *= d;
      tensor_bytes += bytes;
      weight_map.emplace_back(t.name, shard);
      if (opt.progress) opt.progress(++done, total, t.name);
    }
    w.finish();
    report.shards.push_back(shard);
  }
  if (indexed) {
    json::Value md = json::Value::object();
    md.set("total_size", tensor_bytes);
    write_index(dst, md, std::move(weight_map));
  }
  report.side_files = copy_side_files(src, dst, {"quantization_config.json", "quantization_report.json"});
  return report;
}

}  // namespace mmfp4
