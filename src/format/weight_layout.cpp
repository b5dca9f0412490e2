#include "format/weight_layout.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "format/checkpoint.h"
#include "format/hadamard.h"
#include "format/mmfp4.h"

namespace mmfp4 {

void dense_row_to_f32(const void* data, DType dtype, int64_t row, int64_t k, float* out) {
  MMFP4_ASSERT(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16);
  const uint8_t* p = static_cast<const uint8_t*>(data) + size_t(row * k) * dtype_size(dtype);
  for (int64_t i = 0; i < k; ++i) {
    if (dtype == DType::F32) {
      std::memcpy(&out[i], p + 4 * i, 4);
      continue;
    }
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    out[i] = dtype == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
  }
}

const void* aligned_view(const TensorInfo& t, size_t align, std::shared_ptr<const void>& storage) {
  if (reinterpret_cast<uintptr_t>(t.data) % align == 0) return t.data;
  auto copy = std::make_shared<std::vector<uint8_t>>(t.data, t.data + t.nbytes);  // malloc alignment suffices
  storage = copy;
  return copy->data();
}

const TensorInfo* find_mmfp4_scales(const Checkpoint& ck, const std::string& codes_name) {
  if (const TensorInfo* s = ck.find(codes_name + ".scales")) return s;
  const std::string suffix = ".weight";
  if (codes_name.size() > suffix.size() && codes_name.ends_with(suffix)) {
    const std::string m = codes_name.substr(0, codes_name.size() - suffix.size());
    if (const TensorInfo* s = ck.find(m + ".scales")) return s;
    if (const TensorInfo* s = ck.find(m + ".weight_scale")) return s;
  }
  return nullptr;
}

bool is_e2m1_histogram(const int64_t hist[16], std::string* why) {
  int64_t total = 0, nonzero = 0, neg_large = 0;
  for (int c = 0; c < 16; ++c) total += hist[c];
  nonzero = total - hist[0] - hist[8];
  for (int c = 10; c < 16; ++c) neg_large += hist[c];
  if (hist[8] * 1000 > total) {
    if (why) *why = cat(hist[8], " of ", total, " codes are 8 (negative zero), which an E2M1 writer never emits");
    return false;
  }
  if (neg_large == 0 && nonzero >= 64) {
    if (why) *why = cat("none of ", nonzero, " non-zero codes is a negative magnitude of 1 or more (codes 10..15)");
    return false;
  }
  return true;
}

int64_t read_scalar_int(const TensorInfo& t) {
  if ((t.dtype != DType::I32 && t.dtype != DType::I64) || t.numel() != 1 || t.shape.size() > 1)
    fail(t.describe(), ": expected one I32 value of shape [1]");
  if (t.dtype == DType::I32) {
    int32_t v;
    std::memcpy(&v, t.data, 4);
    return v;
  }
  int64_t v;
  std::memcpy(&v, t.data, 8);
  return v;
}

namespace {

enum class Orientation { Canonical, Transposed };

// Which orientation `shape` has: [rows, cols] is canonical, [cols, rows] transposed. When both match (rows ==
// cols), quantization_config.json decides: metal-marlin's "marlin_fp4" writer transposes, the others do not.
bool orientation_of(const std::vector<int64_t>& shape, int64_t rows, int64_t cols, const QuantConfig& qc,
                    Orientation& out) {
  const bool c = shape == std::vector<int64_t>{rows, cols}, t = shape == std::vector<int64_t>{cols, rows};
  if (!c && !t) return false;
  out = c && t ? (qc.format == "marlin_fp4" ? Orientation::Transposed : Orientation::Canonical)
               : (c ? Orientation::Canonical : Orientation::Transposed);
  return true;
}

// The group size implied by a 2-D scales shape for an [n, k_stored] weight, 0 when none is.
int infer_group_size(const std::vector<int64_t>& s, int64_t n, int64_t ks, const QuantConfig& qc) {
  if (s.size() != 2) return 0;
  auto from = [&](int64_t groups) -> int64_t { return groups > 0 && ks % groups == 0 ? ks / groups : 0; };
  const int64_t g_canon = s[0] == n ? from(s[1]) : 0, g_trans = s[1] == n ? from(s[0]) : 0;
  if (g_canon && g_trans && g_canon != g_trans) {
    if (g_canon == qc.group_size) return int(g_canon);
    if (g_trans == qc.group_size) return int(g_trans);
    return int(qc.format == "marlin_fp4" ? g_trans : g_canon);
  }
  return int(g_canon ? g_canon : g_trans);
}

// dst [rows, cols] = transpose of src [cols, rows] (src may be unaligned: it points into a file).
template <typename T>
void transpose_into(const uint8_t* src, int64_t rows, int64_t cols, T* dst) {
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) std::memcpy(&dst[r * cols + c], src + size_t(c * rows + r) * sizeof(T), sizeof(T));
}

struct OwnedMMFP4 {
  std::vector<uint32_t> codes;   // [n, k_stored / 8]
  std::vector<uint16_t> scales;  // [n, k_stored / G]
  std::shared_ptr<const void> codes_view, scales_view;
};

}  // namespace

void load_mmfp4(const Checkpoint& ck, const TensorInfo& codes, const QuantConfig& qc, HostWeight& w) {
  const std::string& P = codes.name;
  const int64_t n = w.n, k = w.k;
  if (codes.shape.size() == 3)
    fail(codes.describe(), ": a 3-D MMFP4 expert bank [E, N, K/8]; expected a single [", n, ", ", k,
         "] weight (expert banks are not loadable yet)");
  const TensorInfo* sc = find_mmfp4_scales(ck, P);
  if (!sc)
    fail(codes.describe(), ": MMFP4 codes without scales (looked for '", P, ".scales', 'M.scales' and ",
         "'M.weight_scale' where P = 'M.weight')");
  if (sc->dtype != DType::F16) fail(sc->describe(), ": MMFP4 scales must be F16, found ", dtype_name(sc->dtype));

  const TensorInfo* gs = ck.find(P + ".group_size");
  const TensorInfo* hb = ck.find(P + ".hadamard_block_size");
  int b = 0;
  if (hb) {
    const int64_t v = read_scalar_int(*hb);
    if (!hadamard_block_valid(v)) fail(hb->describe(), ": Hadamard block ", v, " is not a power of two in [2, 65536]");
    b = int(v);
  }
  // The stored width: k, or k zero-padded to the rotation block.
  const int64_t ks = hadamard_padded(k, b);
  const std::string padded = ks != k ? cat(" (k = ", k, " padded to the Hadamard block ", b, ")") : std::string();
  if (ks % 8 != 0) fail(codes.describe(), ": k_stored = ", ks, padded, " is not a multiple of 8");

  Orientation words_o;
  if (!orientation_of(codes.shape, n, ks / 8, qc, words_o))
    fail(codes.describe(), ": expected MMFP4 codes [", n, ", ", ks / 8, "] for a [", n, ", ", k, "] weight", padded,
         " (or the transposed marlin_fp4 layout [", ks / 8, ", ", n, "]), found ", shape_str(codes.shape));

  int64_t G = gs ? read_scalar_int(*gs) : infer_group_size(sc->shape, n, ks, qc);
  if (gs && (G <= 0 || ks % G != 0))
    fail(gs->describe(), ": group size ", G, " does not divide k_stored = ", ks, padded);
  if (!gs && G == 0)
    fail(sc->describe(), ": scales of shape ", shape_str(sc->shape), " fit no group size for a [", n, ", ", k,
         "] weight", padded, " (expected [", n, ", k/G] or [k/G, ", n, "]), and '", P, ".group_size' is absent");
  Orientation scales_o;
  if (!orientation_of(sc->shape, n, ks / G, qc, scales_o))
    fail(sc->describe(), ": expected MMFP4 scales [", n, ", ", ks / G, "] (or [", ks / G, ", ", n,
         "]) for group size ", G, " and a [", n, ", ", k, "] weight", padded, ", found ", shape_str(sc->shape));

  auto own = std::make_shared<OwnedMMFP4>();
  bool owned = false;
  if (words_o == Orientation::Transposed) {
    own->codes.resize(size_t(n * (ks / 8)));
    transpose_into(codes.data, n, ks / 8, own->codes.data());
    w.codes = own->codes.data();
    owned = true;
  } else {
    w.codes = static_cast<const uint32_t*>(aligned_view(codes, 4, own->codes_view));
    owned |= own->codes_view != nullptr;
  }
  if (scales_o == Orientation::Transposed) {
    own->scales.resize(size_t(n * (ks / G)));
    transpose_into(sc->data, n, ks / G, own->scales.data());
    w.scales = own->scales.data();
    owned = true;
  } else {
    w.scales = static_cast<const uint16_t*>(aligned_view(*sc, 2, own->scales_view));
    owned |= own->scales_view != nullptr;
  }
  if (owned) w.storage = own;

  if (!gs) {
    // No group-size sibling: the signature of scripts/finish_quantization.py, whose codes are not E2M1.
    int64_t hist[16];
    mmfp4_code_histogram(w.codes, n * (ks / 8), hist);
    std::string why;
    if (!is_e2m1_histogram(hist, &why))
      fail(codes.describe(), ": refusing a weight whose codes are not E2M1: it has no '", P,
           ".group_size' sibling and ", why,
           ". This is the output of metal-marlin's scripts/finish_quantization.py, which writes 4-bit codes of a "
           "different grid; quantize the source model again (mmfp4 quantize)");
  }
  w.format = WeightFormat::MMFP4;
  w.k_stored = ks;
  w.group_size = int(G);
  w.hadamard_block = b;
}

}  // namespace mmfp4
