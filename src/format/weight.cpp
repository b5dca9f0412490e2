// Loading linear weights in every layout docs/format.md accepts, into the canonical in-memory form of weight.h.
#include "format/weight.h"

#include <cstring>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "core/half.h"
#include "core/json.h"
#include "core/mapped_file.h"
#include "format/checkpoint.h"
#include "format/hadamard.h"
#include "format/mmfp4.h"
#include "format/weight_layout.h"

namespace mmfp4 {

// ---------------------------------------------------------------------------------------------------------------
// HostWeight
// ---------------------------------------------------------------------------------------------------------------
int64_t HostWeight::stored_bytes() const {
  if (format == WeightFormat::Dense) return n * k * int64_t(dtype_size(dtype));
  return n * (k_stored / 8) * 4 + n * (k_stored / group_size) * 2;
}

bool stack_rows(const std::vector<const HostWeight*>& parts, const std::string& name, HostWeight* out) {
  if (parts.empty()) return false;
  const HostWeight& a = *parts[0];
  int64_t n = 0;
  for (const HostWeight* p : parts) {
    if (p->format != a.format || p->k != a.k || p->k_stored != a.k_stored || p->group_size != a.group_size ||
        p->hadamard_block != a.hadamard_block || (a.format == WeightFormat::Dense && p->dtype != a.dtype))
      return false;
    n += p->n;
  }
  HostWeight w = a;
  w.name = name;
  w.n = n;
  if (a.format == WeightFormat::Dense) {
    const size_t row = size_t(a.k) * dtype_size(a.dtype);
    auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[size_t(n) * row]);
    size_t off = 0;
    for (const HostWeight* p : parts) {
      std::memcpy(buf.get() + off, p->data, size_t(p->n) * row);
      off += size_t(p->n) * row;
    }
    w.data = buf.get();
    w.storage = buf;
  } else {
    const size_t cw = size_t(a.k_stored / 8), sw = size_t(a.k_stored / a.group_size);  // per row
    auto codes = std::shared_ptr<uint32_t[]>(new uint32_t[size_t(n) * cw]);
    auto scales = std::shared_ptr<uint16_t[]>(new uint16_t[size_t(n) * sw]);
    size_t r = 0;
    for (const HostWeight* p : parts) {
      std::memcpy(codes.get() + r * cw, p->codes, size_t(p->n) * cw * 4);
      std::memcpy(scales.get() + r * sw, p->scales, size_t(p->n) * sw * 2);
      r += size_t(p->n);
    }
    w.codes = codes.get();
    w.scales = scales.get();
    w.storage = std::make_shared<std::pair<std::shared_ptr<uint32_t[]>, std::shared_ptr<uint16_t[]>>>(codes, scales);
  }
  *out = std::move(w);
  return true;
}

void HostWeight::dequantize_row(int64_t row, float* out) const {
  MMFP4_ASSERT(row >= 0 && row < n);
  if (format == WeightFormat::Dense) {
    dense_row_to_f32(data, dtype, row, k, out);
    return;
  }
  const uint32_t* words = codes + row * (k_stored / 8);       // [k_stored / 8]
  const uint16_t* s = scales + row * (k_stored / group_size);  // [k_stored / group_size]
  if (!rotated()) {
    mmfp4_dequantize_row(words, s, k_stored, group_size, out);
    return;
  }
  // W = W' H_b block-wise (H_b is its own inverse); done in float64 so the reference adds no rounding of its own
  // beyond the final float32 one. The padded tail (inputs k .. k_stored) is dropped.
  std::vector<float> stored(static_cast<size_t>(k_stored));    // W' row [k_stored]
  mmfp4_dequantize_row(words, s, k_stored, group_size, stored.data());
  std::vector<double> w(stored.begin(), stored.end());  // [k_stored]
  hadamard_transform(w.data(), k_stored, hadamard_block);
  for (int64_t i = 0; i < k; ++i) out[i] = float(w[size_t(i)]);
}

std::vector<float> HostWeight::dequantize() const {
  std::vector<float> out(static_cast<size_t>(n * k));  // [n, k]
  for (int64_t r = 0; r < n; ++r) dequantize_row(r, out.data() + r * k);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// quantization_config.json
// ---------------------------------------------------------------------------------------------------------------
QuantConfig QuantConfig::load(const std::string& dir) {
  QuantConfig qc;
  const std::string path = dir + "/quantization_config.json";
  if (!file_exists(path)) return qc;
  json::Value root = json::parse(read_file(path), path);
  if (!root.is_object()) fail(path, ": expected a JSON object, got a ", json::Value::type_name(root.type()));
  qc.present = true;
  auto field = [&](const char* key, auto& out) {
    const json::Value* v = root.find(key);
    if (!v || v->is_null()) return;
    try {
      using T = std::remove_reference_t<decltype(out)>;
      if constexpr (std::is_same_v<T, std::string>)
        out = v->as_string();
      else if constexpr (std::is_same_v<T, bool>)
        out = v->as_bool();
      else
        out = int(v->as_int());
    } catch (const Error& e) {
      fail(path, ": field '", key, "': ", e.what());
    }
  };
  field("format", qc.format);
  field("group_size", qc.group_size);
  field("use_hadamard", qc.use_hadamard);
  field("hadamard_block_size", qc.hadamard_block_size);
  if (qc.group_size <= 0) fail(path, ": field 'group_size' is ", qc.group_size, ", expected a positive integer");
  return qc;
}

// ---------------------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------------------
bool has_weight(const Checkpoint& ck, const std::string& name) { return ck.find(name) != nullptr; }

HostWeight load_weight(const Checkpoint& ck, const std::string& name, int64_t n, int64_t k, const QuantConfig& qc) {
  const TensorInfo* t = ck.find(name);
  if (!t) fail(ck.dir(), ": weight '", name, "' is missing (expected [", n, ", ", k, "])");
  HostWeight w;
  w.name = name;
  w.n = n;
  w.k = k;
  if (t->dtype == DType::F32 || t->dtype == DType::F16 || t->dtype == DType::BF16) {
    if (t->shape != std::vector<int64_t>{n, k})
      fail(t->describe(), ": expected a dense weight of shape [", n, ", ", k, "], found ", shape_str(t->shape));
    w.format = WeightFormat::Dense;
    w.dtype = t->dtype;
    w.data = aligned_view(*t, dtype_size(t->dtype), w.storage);
    return w;
  }
  if (t->dtype != DType::U32)
    fail(t->describe(), ": expected a dense F32/F16/BF16 weight or MMFP4 U32 codes, found dtype ",
         dtype_name(t->dtype));
  load_mmfp4(ck, *t, qc, w);
  return w;
}

std::vector<float> load_vector(const Checkpoint& ck, const std::string& name, int64_t n) {
  const TensorInfo* t = ck.find(name);
  if (!t) fail(ck.dir(), ": tensor '", name, "' is missing (expected a vector of ", n, ")");
  if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16)
    fail(t->describe(), ": expected an F32, F16 or BF16 vector, found dtype ", dtype_name(t->dtype));
  if (t->shape != std::vector<int64_t>{n}) fail(t->describe(), ": expected shape [", n, "], found ", shape_str(t->shape));
  std::vector<float> out(static_cast<size_t>(n));  // [n]
  dense_row_to_f32(t->data, t->dtype, 0, n, out.data());
  return out;
}

}  // namespace mmfp4
