// Prefill on cuBLAS (FastPaths::blas; docs/cuda.md, "Prefill on cuBLAS"): products of >= kBlasMinRows rows run as
// bf16 GEMMs with float32 accumulation, the MMFP4 weight dequantized to bf16 rows into a load-time buffer just
// before (in row slices of at most kDequantCapBytes), as llama.cpp and vLLM do for large batches. Decode-sized
// steps keep the tile kernels (hi + lo activations, exact group scales).
//   * linear layers: W (dequantized) x X (bf16), output float32 (and the residual added by beta = 1);
//   * MLA absorb (q_lat = W_UK^T q_nope) and expand (W_UV o_lat): strided-batched over the heads;
//   * MLA attention of long prefills: S = [q_lat q_pe] [c kpe]^T in float32, causal softmax to bf16 P, O = P c,
//     per sequence and chunk of queries (the latent is shared by all heads, so every head is one row block).
// Shapes in the comments are row-major [rows, columns]; cuBLAS sees the transposes (column-major).
#include <algorithm>

#include "backend/cuda/cuda_backend_impl.h"
#include "core/error.h"
#include "core/log.h"

namespace mmfp4::cuda {

namespace {
int64_t up8(int64_t a) { return (a + 7) / 8 * 8; }
}  // namespace

// cuBLAS, opened once (at reserve_workspace for models that prefill, else at the first large product). Null when
// unavailable: the tile kernels then take every product, as without the switch.
Cublas* CudaBackend::blas() {
  if (blas_ || blas_tried_) return blas_.get();
  if (capturing_ || graphs_made_) return nullptr;  // opening allocates its workspace
  blas_tried_ = true;
  void* w = ws(blas_ws_, size_t(kBlasWorkspaceBytes), "cuBLAS workspace");
  blas_ = Cublas::open(stream_, w, size_t(kBlasWorkspaceBytes), &blas_why_);
  if (!blas_) log_warn("CUDA backend: prefill products stay on the tile kernels: ", blas_why_);
  return blas_.get();
}

bool CudaBackend::blas_ok(int64_t rows) {
  return fast_.blas && !force_generic_ && !capturing_ && rows >= kBlasMinRows && blas() != nullptr;
}

// A workspace buffer of at least `bytes`, or null where it would have to grow after step graphs were recorded (the
// product then takes the tile kernels: reserve_workspace sizes these buffers for the plan's largest step).
void* CudaBackend::ws_try(Buffer& b, size_t bytes, const char* what) {
  if (bytes > b.bytes && graphs_made_) return nullptr;
  return ws(b, bytes, what);
}

// y [m, n] (+)= x [m, k] W^T. Plain rows only (no MoE tiles, row maps or fused silu); the caller has flushed any
// pending norm.
bool CudaBackend::gemm_blas(const GemmCall& c) {
  const GemmWeight& gw = c.gw;
  if (c.tiles.tiles || c.row_map || c.glu_off || gw.row0 != 0 || !c.w->mma_ok || !blas_ok(c.m)) return false;
  const bool fp4 = gw.kind == WKind::Fp4, f16 = gw.kind == WKind::F16;
  const int64_t kpad = fp4 ? int64_t(gw.k_chunks) * 64 : gw.k;  // columns of W as the product reads them
  const int64_t ldx = up8(kpad);
  // Row slices of the dequantized weight: as many rows as kDequantCapBytes hold (what was reserved, once graphs exist).
  const int64_t cap = graphs_made_ ? int64_t(wdq_.bytes) : kDequantCapBytes;
  const int64_t rows_per_slice = fp4 ? std::min<int64_t>((cap / (kpad * 2)) / 16 * 16, int64_t(gw.n_tiles) * 16) : gw.n;
  if (fp4 && rows_per_slice < 16) return false;
  auto* xb = static_cast<uint16_t*>(ws_try(abf_, size_t(c.m) * size_t(ldx) * 2, "activations (bf16, cuBLAS)"));
  if (!xb) return false;
  launch_to_16bit(c.x, c.x_stride, c.m, int(std::min<int64_t>(c.k_valid, kpad)), int(ldx), f16, xb, ldx, 0, stream_);
  BlasGemm g;
  g.trans_a = true;  // W [n, k] row-major = k x n column-major
  g.n = c.m;
  g.k = int(kpad);
  g.b = xb;
  g.ldb = ldx;
  g.b_type = f16 ? BlasType::F16 : BlasType::BF16;
  g.a_type = g.b_type;
  g.ldc = c.y_stride;
  g.beta = c.accumulate ? 1.0f : 0.0f;
  if (!fp4) {
    g.m = gw.n;
    g.a = gw.data;
    g.lda = gw.k;
    g.c = c.y;
    blas_->gemm(g, c.what);
    return true;
  }
  auto* wd = static_cast<uint16_t*>(ws(wdq_, size_t(rows_per_slice * kpad * 2), "dequantized weight slice"));
  for (int64_t r0 = 0; r0 < gw.n; r0 += rows_per_slice) {
    const int64_t rows = std::min<int64_t>(rows_per_slice, gw.n - r0);
    launch_dequant_bf16(gw, int(r0 / 16), int((rows + 15) / 16), wd, kpad, stream_);
    g.m = int(rows);
    g.a = wd;
    g.lda = kpad;
    g.c = c.y + r0;
    blas_->gemm(g, c.what);
  }
  return true;
}

// The whole of kv_b [H (nope + v), R] as 16-bit rows for the per-head products: dequantized into the slice buffer
// (MMFP4), or the stored rows. Null when it does not fit the buffer.
const void* CudaBackend::kv_b_rows(const CudaLinear& w, int64_t* ld, BlasType* type) {
  const GemmWeight& gw = w.gw;
  if (!w.mma_ok || gw.row0 != 0) return nullptr;
  if (gw.kind != WKind::Fp4) {
    *ld = gw.k;
    *type = gw.kind == WKind::F16 ? BlasType::F16 : BlasType::BF16;
    return gw.data;
  }
  const int64_t kpad = int64_t(gw.k_chunks) * 64, bytes = int64_t(gw.n_tiles) * 16 * kpad * 2;
  if (bytes > kDequantCapBytes) return nullptr;
  auto* wd = static_cast<uint16_t*>(ws_try(wdq_, size_t(bytes), "dequantized weight slice"));
  if (!wd) return nullptr;
  launch_dequant_bf16(gw, 0, gw.n_tiles, wd, kpad, stream_);
  *ld = kpad;
  *type = BlasType::BF16;
  return wd;
}

// One product per head h of kv_b's row block [h (nope + v) + r0, + rows) with the rows t H + h of x [T H, x.cols]:
// out rows t H + h [T H, out.cols]. W_UK (absorb, r0 = 0, rows = nope) contracts over its rows: out = x W_h;
// W_UV (expand, r0 = nope, rows = v) over its columns: out = x W_h^T. Batched over the heads in one cuBLAS call.
bool CudaBackend::kv_b_heads_blas(Act x, const CudaLinear& w, int64_t heads, int64_t nope, int64_t v, bool expand,
                                  Act out, const char* what) {
  const int64_t T = x.rows / heads;
  if (!blas_ok(T)) return false;
  int64_t ldw = 0;
  BlasType type = BlasType::BF16;
  const void* W = kv_b_rows(w, &ldw, &type);
  if (!W || (expand && ldw < x.cols)) return false;
  const int64_t kx = expand ? ldw : x.cols, ldx = up8(kx);  // expand: o_lat zero-padded to kv_b's stored width
  auto* xb = static_cast<uint16_t*>(ws_try(abf_, size_t(x.rows * ldx * 2), "activations (bf16, cuBLAS)"));
  if (!xb) return false;
  launch_to_16bit(x.data, x.stride, int(x.rows), int(x.cols), int(ldx), type == BlasType::F16, xb, ldx, 0, stream_);
  // Column-major per head: absorb out_h^T [R, T] = W_UK_h^T [R, nope] x_h^T [nope, T] (W_UK_h as stored is R x nope
  // column-major); expand out_h^T [v, T] = W_UV_h [v, K] x_h^T [K, T] (op T of the stored K x v).
  BlasGemm g;
  g.trans_a = expand;
  g.m = int(out.cols);
  g.n = int(T);
  g.k = int(kx);
  g.a = static_cast<const uint8_t*>(W) + (expand ? nope : 0) * ldw * 2;
  g.lda = ldw;
  g.stride_a = (nope + v) * ldw;
  g.a_type = g.b_type = type;
  g.b = xb;
  g.ldb = heads * ldx;
  g.stride_b = ldx;
  g.c = out.data;
  g.ldc = heads * out.stride;
  g.stride_c = out.stride;
  g.batch = int(heads);
  blas_->gemm(g, what);
  return true;
}

// Absorbed MLA attention of a long prefill. Each sequence of the step must be one run of consecutive positions
// p0 .. p0 + n - 1 whose keys (the cache rows 0 .. p0 + n - 1, this step's included) number at most kBlasAttnMaxKeys;
// otherwise the step takes the flash kernels.
bool CudaBackend::mla_attention_blas(Act q_lat, Act q_pe, const KVLayerView& kv, int64_t heads, float scale,
                                     const BatchMeta& b, Act out_lat) {
  if (!b.h_positions || !b.h_seq || !blas_ok(b.n_tokens)) return false;
  struct Run {
    int64_t t0, n, seq, p0;
  };
  std::vector<Run> runs;
  std::vector<char> seen(size_t(std::max<int64_t>(b.n_seqs, 1)), 0);
  for (int64_t t = 0; t < b.n_tokens; ++t) {
    const int64_t s = b.h_seq[t], p = b.h_positions[t];
    if (!runs.empty() && runs.back().seq == s && runs.back().p0 + runs.back().n == p) {
      ++runs.back().n;
      continue;
    }
    if (s < 0 || s >= b.n_seqs || seen[size_t(s)]) return false;
    seen[size_t(s)] = 1;
    runs.push_back({t, 1, s, p});
  }
  for (const Run& r : runs)
    if (r.n < kBlasAttnMinTokens || r.p0 + r.n > kBlasAttnMaxKeys) return false;
  const int64_t R = q_lat.cols, P = q_pe.cols, W = kv.width, ldk = up8(W);
  int64_t max_keys = 0;
  for (const Run& r : runs) max_keys = std::max(max_keys, r.p0 + r.n);
  // Scores of as many query rows as the budget holds (at least one query's heads over all its keys).
  const int64_t need = b.n_tokens * heads * up8(max_keys) * 4;
  const int64_t budget = std::min<int64_t>(need, graphs_made_ ? int64_t(att_s_.bytes) : kAttnScoreCapBytes);
  if (budget < heads * up8(max_keys) * 4) return false;
  auto* kc = static_cast<uint16_t*>(ws_try(att_k_, size_t(max_keys * ldk * 2), "attention keys (bf16)"));
  auto* qb = static_cast<uint16_t*>(ws_try(abf_, size_t(b.n_tokens * heads * ldk * 2), "activations (bf16, cuBLAS)"));
  auto* S = static_cast<float*>(ws_try(att_s_, size_t(budget), "attention scores"));
  auto* Pm = static_cast<uint16_t*>(ws_try(att_p_, size_t(budget / 2), "attention probabilities"));
  if (!kc || !qb || !S || !Pm) return false;
  // All queries once: [q_lat q_pe 0..] rows t H + h.
  launch_to_16bit(q_lat.data, q_lat.stride, int(q_lat.rows), int(R), int(R), false, qb, ldk, 0, stream_);
  launch_to_16bit(q_pe.data, q_pe.stride, int(q_pe.rows), int(P), int(ldk - R), false, qb, ldk, int(R), stream_);
  for (const Run& r : runs) {
    const int64_t keys = r.p0 + r.n;
    launch_gather_cache_bf16(kv.data, kv.dtype == DType::BF16, kv.block_size, W, b.block_tables + r.seq * b.max_blocks,
                             int(keys), kc, ldk, stream_);
    const int64_t lds_max = up8(keys);
    const int64_t chunk = std::max<int64_t>(1, budget / (lds_max * 4) / heads);  // queries per chunk
    for (int64_t i0 = 0; i0 < r.n; i0 += chunk) {
      const int64_t i1 = std::min(r.n, i0 + chunk), rows = (i1 - i0) * heads, nk = r.p0 + i1, lds = up8(nk);
      BlasGemm s;  // S [rows, nk] = Q [rows, W] K^T: column-major S^T [nk, rows] = K [nk, W] (op T) Q^T [W, rows]
      s.trans_a = true;
      s.m = int(nk);
      s.n = int(rows);
      s.k = int(W);
      s.a = kc;
      s.lda = ldk;
      s.b = qb + (r.t0 + i0) * heads * ldk;
      s.ldb = ldk;
      s.c = S;
      s.ldc = lds;
      blas_->gemm(s, "mla_attention scores");
      launch_causal_softmax_bf16(S, lds, int(rows), int(heads), int(r.p0 + i0), int(nk), scale, Pm, lds, stream_);
      BlasGemm o;  // O [rows, R] = P [rows, nk] C [nk, R]: column-major O^T [R, rows] = C^T [R, nk] P^T [nk, rows]
      o.m = int(R);
      o.n = int(rows);
      o.k = int(nk);
      o.a = kc;
      o.lda = ldk;
      o.b = Pm;
      o.ldb = lds;
      o.c = out_lat.data + (r.t0 + i0) * heads * out_lat.stride;
      o.ldc = out_lat.stride;
      blas_->gemm(o, "mla_attention values");
    }
  }
  return true;
}

}  // namespace mmfp4::cuda
