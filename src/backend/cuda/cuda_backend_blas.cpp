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
#include <string>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "core/error.h"
#include "core/log.h"

namespace mmfp4::cuda {

namespace {
int64_t up8(int64_t a) { return (a + 7) / 8 * 8; }

// The products, as cuBLAS sees them (column-major, so each is the transpose of the row-major one in its comment).
// y [m, rows] (+)= x [m, k] W^T, W [rows, k] 16-bit with row stride ldw: y^T = W (op T) x^T.
BlasGemm linear_product(const void* w, int64_t ldw, int rows, BlasType t, const void* xb, int64_t ldx, int m, int k,
                        float* y, int64_t ldy, bool accumulate) {
  BlasGemm g;
  g.trans_a = true;
  g.m = rows;
  g.n = m;
  g.k = k;
  g.a = w;
  g.lda = ldw;
  g.a_type = g.b_type = t;
  g.b = xb;
  g.ldb = ldx;
  g.c = y;
  g.ldc = ldy;
  g.beta = accumulate ? 1.0f : 0.0f;
  return g;
}
// S [rows, keys] = Q [rows, width] K^T, K [keys, width] (row stride ldk), Q with row stride ldk too.
BlasGemm scores_product(const uint16_t* K, int64_t ldk, int keys, int width, const uint16_t* Q, int rows, float* S,
                        int64_t lds) {
  return linear_product(K, ldk, keys, BlasType::BF16, Q, ldk, rows, width, S, lds, false);
}
// O [rows, R] = P [rows, keys] C [keys, R], C = the first R columns of K [keys, ldk]: O^T = C^T P^T, C^T being K as
// stored read column-major (op N).
BlasGemm values_product(const uint16_t* K, int64_t ldk, int keys, int R, const uint16_t* P, int64_t ldp, int rows,
                        float* O, int64_t ldo) {
  BlasGemm g = linear_product(K, ldk, R, BlasType::BF16, P, ldp, rows, keys, O, ldo, false);
  g.trans_a = false;
  return g;
}
// Per head h (batched): out rows t H + h = x rows t H + h times kv_b's row block [h (nope + v) + r0, + rows_h): absorb
// contracts over the block's rows (out = x W_h, W_h^T as stored is [R, nope] column-major: op N), expand over its
// columns (out = x W_h^T: op T). x [T H, kx] bf16 with row stride ldx, out [T H, out_cols] with row stride ldo.
BlasGemm heads_product(const void* W, int64_t ldw, BlasType t, int64_t nope, int64_t v, bool expand, int heads, int T,
                       const void* xb, int64_t ldx, int kx, float* out, int64_t ldo, int out_cols) {
  BlasGemm g = linear_product(static_cast<const uint8_t*>(W) + (expand ? nope : 0) * ldw * 2, ldw, out_cols, t, xb,
                              heads * ldx, T, kx, out, heads * ldo, false);
  g.trans_a = expand;
  g.stride_a = (nope + v) * ldw;
  g.stride_b = ldx;
  g.stride_c = ldo;
  g.batch = heads;
  return g;
}
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

// Rows of an MMFP4 weight dequantized per slice: as many 16-row tiles as the slice buffer holds (kDequantCapBytes,
// or what was reserved once graphs exist), all n for dense weights (used as stored); < 16: does not fit.
int64_t CudaBackend::slice_rows(WKind kind, int64_t n, int64_t kpad) const {
  if (kind != WKind::Fp4) return n;
  const int64_t cap = graphs_made_ ? int64_t(wdq_.bytes) : kDequantCapBytes;
  return std::min<int64_t>((cap / (kpad * 2)) / 16 * 16, (n + 15) / 16 * 16);
}

// Whether a linear's product of `rows` rows (weight view gw of w) goes to cuBLAS: plain weight rows on the tensor-core
// formats (not the exact float32 kind), a product of prefill size, and a slice buffer of at least one 16-row tile.
bool CudaBackend::blas_linear_ok(const GemmWeight& gw, const CudaLinear& w, int64_t rows) {
  return gw.row0 == 0 && w.mma_ok && !w.exact && blas_ok(rows) && slice_rows(gw.kind, gw.n, product_width(gw)) >= 16;
}

// y [m, n] (+)= x [m, k] W^T. Plain rows only (no MoE tiles, row maps or fused silu). When x is the pending norm's
// output (c.fuse_norm), the norm writes the bf16 input itself (FastPaths::norm_blas); a false return leaves it
// pending.
bool CudaBackend::gemm_blas(const GemmCall& c) {
  const GemmWeight& gw = c.gw;
  if (c.tiles.tiles || c.row_map || c.glu_off || !blas_linear_ok(gw, *c.w, c.m)) return false;
  const bool f16 = gw.kind == WKind::F16;
  const int64_t kpad = product_width(gw), ldx = up8(kpad);
  auto* xb = static_cast<uint16_t*>(ws_try(abf_, size_t(c.m) * size_t(ldx) * 2, "activations (bf16, cuBLAS)"));
  if (!xb) return false;
  const int cols = int(std::min<int64_t>(c.k_valid, kpad));
  if (c.fuse_norm && pending_.on && fast_.norm_blas && pending_.x.cols == cols) {
    const PendingNorm& n = pending_;
    pending_.on = false;
    launch_rmsnorm_16bit(n.x.data, n.x.stride, n.out.data, n.out.stride, int(n.x.rows), cols, n.w, n.eps, xb, ldx,
                         int(ldx), f16, stream_);
    ++norm_blas_fused_;
  } else {
    flush_norm();
    launch_to_16bit(c.x, c.x_stride, c.m, cols, int(ldx), f16, xb, ldx, 0, stream_);
  }
  blas_linear_products(gw, xb, ldx, c.m, c.y, c.y_stride, c.accumulate, c.what);
  return true;
}

// y [m, n] (+)= xb [m, kpad] W^T on cuBLAS, xb 16-bit with row stride ldx: dense weights as stored, MMFP4 dequantized
// to bf16 in row slices (the slice buffer fits at least 16 rows: blas_linear_ok).
void CudaBackend::blas_linear_products(const GemmWeight& gw, const uint16_t* xb, int64_t ldx, int m, float* y,
                                       int64_t y_stride, bool accumulate, const char* what) {
  const int64_t kpad = product_width(gw);
  const BlasType t = gw.kind == WKind::F16 ? BlasType::F16 : BlasType::BF16;
  if (gw.kind != WKind::Fp4) {
    blas_->gemm(linear_product(gw.data, gw.k, gw.n, t, xb, ldx, m, int(kpad), y, y_stride, accumulate), what);
    return;
  }
  const int64_t rows_per_slice = slice_rows(gw.kind, gw.n, kpad);
  auto* wd = static_cast<uint16_t*>(ws(wdq_, size_t(rows_per_slice * kpad * 2), "dequantized weight slice"));
  wdq_uid_ = 0;
  for (int64_t r0 = 0; r0 < gw.n; r0 += rows_per_slice) {
    const int64_t rows = std::min<int64_t>(rows_per_slice, gw.n - r0);
    launch_dequant_bf16(gw, int(r0 / 16), int((rows + 15) / 16), wd, kpad, stream_);
    blas_->gemm(linear_product(wd, kpad, int(rows), t, xb, ldx, m, int(kpad), y + r0, y_stride, accumulate), what);
  }
}

bool CudaBackend::linear_16bit(const uint16_t* xb, int64_t ld, int64_t m, const LinearWeight& w_in, Act out,
                               bool accumulate) {
  flush_norm();
  const auto& w = static_cast<const CudaLinear&>(w_in);
  const GemmWeight& gw = w.gw;
  if (out.rows != m || out.cols != w.n || ld < up8(product_width(gw)))
    fail("linear_16bit ", w.name, " [", w.n, ", ", w.k, "]: x [", m, ", ld ", ld, "], out [", out.rows, ", ",
         out.cols, "]");
  if (!blas_linear_ok(gw, w, m)) return false;
  blas_linear_products(gw, xb, ld, int(m), out.data, out.stride, accumulate, "linear_16bit");
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
  const int64_t kpad = product_width(gw), bytes = int64_t(gw.n_tiles) * 16 * kpad * 2;
  if (bytes > kDequantCapBytes) return nullptr;
  *ld = kpad;
  *type = BlasType::BF16;
  // absorb_q and expand_v of a layer read the same kv_b: dequantized once (nothing else writes wdq_ in between).
  if (w.uid != 0 && wdq_uid_ == w.uid && int64_t(wdq_.bytes) >= bytes) return wdq_.p;
  auto* wd = static_cast<uint16_t*>(ws_try(wdq_, size_t(bytes), "dequantized weight slice"));
  if (!wd) return nullptr;
  launch_dequant_bf16(gw, 0, gw.n_tiles, wd, kpad, stream_);
  wdq_uid_ = w.uid;
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
  const BlasGemm g = heads_product(W, ldw, type, nope, v, expand, int(heads), int(T), xb, ldx, int(kx), out.data,
                                   out.stride, int(out.cols));
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
      blas_->gemm(scores_product(kc, ldk, int(nk), int(W), qb + (r.t0 + i0) * heads * ldk, int(rows), S, lds),
                  "mla_attention scores");
      launch_causal_softmax_bf16(S, lds, int(rows), int(heads), int(r.p0 + i0), int(nk), scale, Pm, lds, stream_);
      blas_->gemm(values_product(kc, ldk, int(nk), int(R), Pm, lds, int(rows),
                                 out_lat.data + (r.t0 + i0) * heads * out_lat.stride, out_lat.stride),
                  "mla_attention values");
    }
  }
  return true;
}

// cuBLAS loads a kernel the first time it launches it (CUDA lazy loading): the first prefill after load would pay
// for every kernel its products need (measured on the H100: 2,048 tokens in 191 ms the first time, 144 ms after).
// So at load, the products of prefill steps of 128, 256, .. up to the plan's largest step are recorded into a graph
// that is instantiated (which loads their kernels) and thrown away, never run: the linear shapes uploaded so far,
// and for MLA models the absorb/expand and attention products of a fresh prefill of that many tokens.
void CudaBackend::warm_blas(const WorkspacePlan& plan) {
  if (!blas_ || capturing_) return;
  const double t0 = now_seconds();
  std::vector<int64_t> ms;
  for (int64_t m = kBlasMinRows; m < plan.max_tokens; m *= 2) ms.push_back(m);
  ms.push_back(plan.max_tokens);
  auto* xb = static_cast<uint16_t*>(abf_.p);
  auto* wd = static_cast<uint16_t*>(wdq_.p);
  auto* out = static_cast<float*>(att_s_.p ? att_s_.p : abf_.p);
  int products = 0;
  MMFP4_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cuBLAS warm-up capture");
  capturing_ = capture_in_progress() = true;
  std::string error;
  try {
    for (int64_t m : ms) {
      for (const LinearShape& sh : linear_shapes_) {
        const int64_t ldx = up8(sh.kpad);
        if (m * ldx * 2 > int64_t(abf_.bytes)) continue;
        const BlasType t = sh.kind == WKind::F16 ? BlasType::F16 : BlasType::BF16;
        // The slices gemm_blas makes: full ones and the remainder.
        const int64_t per = slice_rows(sh.kind, sh.n, sh.kpad);
        if (per < 16 || !wd) continue;
        std::vector<int64_t> rows = {std::min(per, sh.n)};
        if (sh.n > per && sh.n % per) rows.push_back(sh.n % per);
        for (int64_t r : rows) {
          blas_->gemm(linear_product(wd, sh.kpad, int(r), t, xb, ldx, int(m), int(sh.kpad), out, sh.n, false),
                      "warm-up");
          ++products;
        }
      }
      if (plan.mla && plan.max_heads > 0 && att_s_.p && att_k_.p && wd) {
        const int64_t H = plan.max_heads, W = plan.max_kv_width, R = plan.mla_rank, ldk = up8(W), lds = up8(m);
        const int64_t ldw = (R + 63) / 64 * 64;
        const int64_t chunk = std::min<int64_t>(m, int64_t(att_s_.bytes) / (lds * 4) / H);
        if (chunk > 0 && m * H * ldk * 2 <= int64_t(abf_.bytes)) {
          const int rows = int(chunk * H);
          auto* kc = static_cast<uint16_t*>(att_k_.p);
          blas_->gemm(scores_product(kc, ldk, int(m), int(W), xb, rows, out, lds), "warm-up");
          blas_->gemm(values_product(kc, ldk, int(m), int(R), static_cast<uint16_t*>(att_p_.p), lds, rows, out, R),
                      "warm-up");
          blas_->gemm(heads_product(wd, ldw, BlasType::BF16, plan.mla_nope, plan.mla_v, false, int(H), int(m), xb,
                                    up8(plan.mla_nope), int(plan.mla_nope), out, R, int(R)),
                      "warm-up");
          blas_->gemm(heads_product(wd, ldw, BlasType::BF16, plan.mla_nope, plan.mla_v, true, int(H), int(m), xb,
                                    up8(ldw), int(ldw), out, plan.mla_v, int(plan.mla_v)),
                      "warm-up");
          products += 4;
        }
      }
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  capturing_ = capture_in_progress() = false;
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = end == cudaSuccess ? cudaGraphInstantiate(&exec, graph, 0) : end;
  if (exec) cudaGraphExecDestroy(exec);
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();  // a failed warm-up leaves no sticky error behind: the products run (or fail clearly) later
  if (!error.empty() || inst != cudaSuccess)
    log_warn("CUDA backend: the cuBLAS warm-up failed (", error.empty() ? cudaGetErrorString(inst) : error,
             "): the first prefill may be slower than later ones");
  else
    log_info("CUDA backend: ", products, " cuBLAS prefill products loaded in ", (now_seconds() - t0) * 1e3, " ms (",
             blas_->library(), ")");
}

}  // namespace mmfp4::cuda
