// The CUDA backend (cuda_backend_impl.h): memory, weight upload and repacking, workspace, graphs, and the choice of
// kernel for each op and shape. Kernels are in the .cu files of this folder (kernels.h).
#include "backend/cuda/cuda_backend_impl.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/repack.h"
#include "core/env.h"
#include "core/error.h"
#include "core/log.h"

namespace mmfp4 {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

std::string cuda_status_message() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return cat(cudaGetErrorName(e), ": ", cudaGetErrorString(e));
  }
  if (n == 0) return "no CUDA device";
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return "device 0: properties unavailable";
  return cat(n, " device(s); device 0: ", p.name, " (sm_", p.major, p.minor, ", ", p.multiProcessorCount, " SMs, ",
             p.totalGlobalMem >> 20, " MiB)");
}

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<cuda::CudaBackend>(device); }

namespace cuda {

namespace {

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
bool kv_ok(const KVLayerView& kv) { return kv.dtype == DType::BF16 || kv.dtype == DType::F32; }

// The paged-cache and per-step fields every attention launch shares (values read on the device: graph-safe).
void set_cache(AttnArgs& a, const KVLayerView& kv, const BatchMeta& b, float scale) {
  a.cache = kv.data;
  a.cache_f32 = kv.dtype == DType::F32;
  a.width = kv.width;
  a.block_size = kv.block_size;
  a.scale = scale;
  a.n_tokens = int(b.n_tokens);
  a.positions = b.positions;
  a.seq = b.seq;
  a.block_tables = b.block_tables;
  a.max_blocks = b.max_blocks;
}
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows [r0, r0 + n) of a weight as a view of its own, no copy (docs/format.md, "CUDA tile layout"): MMFP4 rows on a
// 16-row tile start whole tiles later; MMFP4 rows off the tiles keep the data and mark row0 (only the generic kernel
// takes those); dense rows start r0 rows later.
GemmWeight rows_of(const GemmWeight& g, int64_t r0, int64_t n) {
  GemmWeight s = g;
  s.n = int(n);
  if (g.kind == WKind::Fp4) {
    if (r0 % 16 != 0) {
      s.row0 = int(r0);
      return s;
    }
    s.data = static_cast<const uint4*>(g.data) + (r0 / 16) * int64_t(g.k_chunks) * 32;
    s.scales = g.scales + (r0 / 16) * int64_t(g.groups) * 8;
  } else {
    s.data = static_cast<const uint8_t*>(g.data) + r0 * g.k * (g.kind == WKind::F32 ? 4 : 2);
  }
  s.n_tiles = int(ceil_div(n, 16));
  return s;
}

// MLA's per-head W_UV of kv_b as a stack of "experts": head h's rows [h (nope + v) + nope, + v) are expert h (the
// per-head mode of the tensor-core GEMV, and the value projection joined to the decode attention).
GemmWeight w_uv_heads(const GemmWeight& g, int64_t nope, int64_t v) {
  GemmWeight sub = rows_of(g, nope, v);
  if (g.kind == WKind::Fp4) {
    sub.expert_stride = ((nope + v) / 16) * int64_t(g.k_chunks) * 32;
    sub.expert_scale_stride = ((nope + v) / 16) * int64_t(g.groups) * 8;
  } else {
    sub.expert_stride = (nope + v) * g.k;
  }
  return sub;
}

// Whether the memory of two views can overlap (conservatively: their spans of addresses).
bool may_overlap(const Act& a, const Act& b) {
  if (a.rows == 0 || b.rows == 0) return false;
  const float* a1 = a.data + (a.rows - 1) * a.stride + a.cols;
  const float* b1 = b.data + (b.rows - 1) * b.stride + b.cols;
  return a.data < b1 && b.data < a1;
}

constexpr int kBlockRows = 128;               // rows of W per block of the tensor-core kernel (8 warps x 16)
constexpr int64_t kPartialCapBytes = 64 << 20;  // split-K partial sums
constexpr int64_t kCounterCapacity = 1 << 20;
constexpr int kAttnSplitMaxTokens = 64;  // attention splits the KV length only for steps this small (decode)
constexpr int64_t kAttnMaxSplits = 16;

}  // namespace

CudaLinear::~CudaLinear() {
  for (void* p : owned) cudaFree(p);
}

CudaStepGraph::~CudaStepGraph() {
  if (exec) cudaGraphExecDestroy(exec);
  if (graph) cudaGraphDestroy(graph);
}

CudaBackend::CudaBackend(int device) : device_(device) {
  const int n = cuda_device_count();
  if (device < 0 || device >= n) fail("CUDA device ", device, " does not exist (", cuda_status_message(), ")");
  MMFP4_CUDA_CHECK(cudaSetDevice(device), "select device ", device);
  cudaDeviceProp p{};
  MMFP4_CUDA_CHECK(cudaGetDeviceProperties(&p, device), "device properties");
  if (p.major < 8)
    fail("CUDA device ", device, " (", p.name, ") is sm_", p.major, p.minor,
         ": the CUDA backend needs sm_80 or newer (bf16 tensor cores)");
  sms_ = p.multiProcessorCount;
  smem_optin_ = p.sharedMemPerBlockOptin;
  name_ = cat("cuda (", p.name, ", sm_", p.major, p.minor, ", ", sms_, " SMs, ", p.totalGlobalMem >> 20, " MiB)");
  MMFP4_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "create stream");
  if (env_choice("MMFP4_CUDA_GEMM", {"split", "bf16"}).value_or("split") == "bf16") split_ = false;
  if (const auto k = env_int("MMFP4_CUDA_ATTN_MINKEYS", 1, 1 << 30)) attn_min_keys_ = int(*k);
  if (env_choice("MMFP4_CUDA_KV", {"f32", "bf16"}).value_or("f32") == "bf16") kv_dtype_ = DType::BF16;
  // Speed paths (FastPaths): MMFP4_CUDA_FAST=0 turns them all off, MMFP4_CUDA_FAST_<NAME>=0/1 each one.
  auto flag = [](const char* name, bool& v) { v = env_bool(name).value_or(v); };
  bool all = true;
  flag("MMFP4_CUDA_FAST", all);
  if (!all)
    fast_.absorb = fast_.attn = fast_.moe = fast_.prep = fast_.gemm = fast_.flash = fast_.dequant = fast_.pdl =
        fast_.norm = fast_.blas = fast_.mla_prep = fast_.raw_gemv = fast_.attn_stage = fast_.moe_direct =
            fast_.moe_router = fast_.mla_fuse = fast_.gemv_wide = fast_.wgmma = fast_.norm_blas =
                fast_.gemv_pair = fast_.gemv_kwarps = fast_.moe_sum = fast_.gemv_one = fast_.token_norm =
                    fast_.token_router = fast_.attn_expand = fast_.dense_tiles = fast_.whole_k =
                        fast_.whole_k_pair = fast_.stage_batch = fast_.shared_early =
                            fast_.dense_persist = fast_.moe_stream = false;
  flag("MMFP4_CUDA_FAST_MLAFUSE", fast_.mla_fuse);
  flag("MMFP4_CUDA_FAST_MOEDIRECT", fast_.moe_direct);
  flag("MMFP4_CUDA_FAST_MOESUM", fast_.moe_sum);
  flag("MMFP4_CUDA_FAST_GEMVONE", fast_.gemv_one);
  flag("MMFP4_CUDA_FAST_TOKENNORM", fast_.token_norm);
  flag("MMFP4_CUDA_FAST_TOKENROUTER", fast_.token_router);
  flag("MMFP4_CUDA_FAST_ATTNEXPAND", fast_.attn_expand);
  flag("MMFP4_CUDA_FAST_MOEROUTER", fast_.moe_router);
  flag("MMFP4_CUDA_FAST_FLASH", fast_.flash);
  flag("MMFP4_CUDA_FAST_RAWGEMV", fast_.raw_gemv);
  flag("MMFP4_CUDA_FAST_GEMVWIDE", fast_.gemv_wide);
  flag("MMFP4_CUDA_FAST_GEMVPAIR", fast_.gemv_pair);
  flag("MMFP4_CUDA_FAST_GEMVKWARPS", fast_.gemv_kwarps);
  flag("MMFP4_CUDA_FAST_WGMMA", fast_.wgmma);
  flag("MMFP4_CUDA_FAST_DENSETILES", fast_.dense_tiles);
  flag("MMFP4_CUDA_FAST_WHOLEK", fast_.whole_k);
  flag("MMFP4_CUDA_FAST_WHOLEKPAIR", fast_.whole_k_pair);
  flag("MMFP4_CUDA_FAST_STAGEBATCH", fast_.stage_batch);
  flag("MMFP4_CUDA_FAST_SHAREDEARLY", fast_.shared_early);
  flag("MMFP4_CUDA_FAST_DENSEPERSIST", fast_.dense_persist);
  flag("MMFP4_CUDA_FAST_MOESTREAM", fast_.moe_stream);
  flag("MMFP4_CUDA_FAST_ATTNSTAGE", fast_.attn_stage);
  flag("MMFP4_CUDA_FAST_BLAS", fast_.blas);
  flag("MMFP4_CUDA_FAST_MLAPREP", fast_.mla_prep);
  flag("MMFP4_CUDA_FAST_NORM", fast_.norm);
  flag("MMFP4_CUDA_FAST_NORMBLAS", fast_.norm_blas);
  flag("MMFP4_CUDA_PREFILL_BF16", fast_.prefill_bf16);
  flag("MMFP4_CUDA_FAST_GEMM", fast_.gemm);
  flag("MMFP4_CUDA_FAST_DEQUANT", fast_.dequant);
  flag("MMFP4_CUDA_FAST_ABSORB", fast_.absorb);
  flag("MMFP4_CUDA_FAST_ATTN", fast_.attn);
  flag("MMFP4_CUDA_FAST_MOE", fast_.moe);
  flag("MMFP4_CUDA_FAST_PREP", fast_.prep);
  flag("MMFP4_CUDA_FAST_PDL", fast_.pdl);
  // Measurement: set_max_splits for every linear (0: no cap).
  if (const auto v = env_int("MMFP4_CUDA_MAX_SPLITS", 0, 64)) max_splits_ = int(*v);
  if (const auto v = env_int("MMFP4_CUDA_MOE_DIRECT_TOKENS", 1, 16)) moe_direct_tokens_ = int(*v);
  if (const auto v = env_int("MMFP4_CUDA_TOKEN_GEMV_TOKENS", 1, kTokenGemvMaxTokens)) token_gemv_tokens_ = int(*v);
  if (std::getenv("MMFP4_CUDA_TOKEN_GEMV_USES")) {  // measurement: which uses take more than one token
    const std::string u = "," + env_list("MMFP4_CUDA_TOKEN_GEMV_USES", {"plain", "norm", "router"}) + ",";
    token_uses_plain_ = u.find(",plain,") != std::string::npos;
    token_uses_norm_ = u.find(",norm,") != std::string::npos;
    token_uses_router_ = u.find(",router,") != std::string::npos;
  }
  // Measurement: "halve" = the split before 2026-11-27.
  if (const auto v = env_choice("MMFP4_CUDA_STAGE_SPLIT", {"fit", "halve"})) stage_fit_ = *v == "fit";
  fast_.pdl = fast_.pdl && p.major >= 9 && probe_pdl();  // griddepcontrol is sm_90
  pdl_flag() = fast_.pdl;
  wgmma_ok_ = p.major == 9 && p.minor == 0 && wgmma_available(stream_);  // sm_90a code runs on sm_90 only
#ifdef MMFP4_CUDA_SIM_BUILD
  bulk_copy_ok_ = true;  // the simulator's copies and barriers (bulk_copy.cuh)
#else
  bulk_copy_ok_ = wgmma_ok_;  // the sm_90a pass runs (gemv_whole_k.cu is compiled for sm_90 there)
#endif
  fast_.wgmma = fast_.wgmma && wgmma_ok_;
  name_ += cat(", ", split_ ? "split" : "bf16", " activations, fast paths: absorb ", fast_.absorb, " attn ",
               fast_.attn, " moe ", fast_.moe, " prep ", fast_.prep, " gemm ", fast_.gemm, " flash ", fast_.flash,
               " dequant ", fast_.dequant, " norm ", fast_.norm, " pdl ", fast_.pdl, " moe_direct ", fast_.moe_direct,
               " moe_router ", fast_.moe_router, " mla_fuse ", fast_.mla_fuse, " gemv_wide ", fast_.gemv_wide,
               " wgmma ", fast_.wgmma, " norm_blas ", fast_.norm_blas, " gemv_pair ", fast_.gemv_pair,
               " gemv_kwarps ", fast_.gemv_kwarps, " moe_sum ", fast_.moe_sum, " gemv_one ", fast_.gemv_one,
               " token_norm ", fast_.token_norm, " token_router ", fast_.token_router, " attn_expand ",
               fast_.attn_expand, " dense_tiles ", fast_.dense_tiles, " whole_k ", fast_.whole_k && bulk_copy_ok_,
               " whole_k_pair ", fast_.whole_k_pair && bulk_copy_ok_, " stage_batch ", fast_.stage_batch,
               " shared_early ", fast_.shared_early, " dense_persist ", fast_.dense_persist, " moe_stream ",
               fast_.moe_stream && bulk_copy_ok_);
}

// Programmatic dependent launch must work in captured graphs (the decode steps are graphs): record y += x, y += y,
// x += y with PDL, instantiate, replay from x = 1, y = 0, and check x == 3, y == 2. Any error or wrong value: plain
// launches (with a warning).
bool CudaBackend::probe_pdl() {
  constexpr int kN = 4096;
  float* buf = nullptr;
  bool ok = cudaMalloc(&buf, 2 * kN * sizeof(float)) == cudaSuccess;
  float *x = buf, *y = buf + kN;
  std::vector<float> init(2 * kN, 0.0f), got(2 * kN, 0.0f);
  std::fill(init.begin(), init.begin() + kN, 1.0f);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  const bool was = pdl_flag();
  pdl_flag() = true;
  try {
    ok = ok && cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
    if (ok) {
      capture_in_progress() = true;
      launch_add(y, kN, x, kN, 1, kN, stream_);
      launch_add(y, kN, y, kN, 1, kN, stream_);
      launch_add(x, kN, y, kN, 1, kN, stream_);
      capture_in_progress() = false;
      ok = cudaStreamEndCapture(stream_, &graph) == cudaSuccess;
    }
    ok = ok && cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
    ok = ok && cudaMemcpy(buf, init.data(), 2 * kN * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess;
    ok = ok && cudaGraphLaunch(exec, stream_) == cudaSuccess && cudaStreamSynchronize(stream_) == cudaSuccess;
    ok = ok && cudaMemcpy(got.data(), buf, 2 * kN * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess;
    for (int i = 0; ok && i < 2 * kN; ++i) ok = got[size_t(i)] == (i < kN ? 3.0f : 2.0f);
  } catch (const Error&) {
    ok = false;
    capture_in_progress() = false;
    cudaStreamEndCapture(stream_, &graph);  // leave no capture open after a failed launch
  }
  cudaGetLastError();
  if (exec) cudaGraphExecDestroy(exec);
  if (graph) cudaGraphDestroy(graph);
  if (buf) cudaFree(buf);
  pdl_flag() = was;
  if (!ok) log_warn("CUDA backend: programmatic dependent launch failed its graph probe; using plain launches");
  return ok;
}

CudaBackend::~CudaBackend() {
  blas_.reset();
  for (Buffer* b : {&xb_, &xb_lo_, &rot_, &partial_, &counters_, &moe_sorted_, &moe_pos_, &moe_tiles_, &moe_count_, &moe_g_,
                    &moe_u_, &moe_d_, &moe_rot_, &attn_part_, &attn_plan_, &attn_ctr_, &blas_ws_, &wdq_, &abf_, &att_k_,
                    &att_s_, &att_p_, &argmax_part_, &argmax_ctr_})
    if (b->p) cudaFree(b->p);
  if (stream_) cudaStreamDestroy(stream_);
}

// ---------------------------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------------------------
void* CudaBackend::alloc(size_t bytes, const std::string& what) {
  if (capturing_) fail("CUDA backend: allocation of ", what, " while a step graph is being recorded");
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 256));
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total = 0;
    cudaMemGetInfo(&free_b, &total);
    fail("out of GPU memory: ", what, " needs ", bytes, " bytes (", double(bytes) / (1 << 20), " MiB) but only ",
         free_b, " bytes (", double(free_b) / (1 << 20), " MiB) of ", total >> 20, " MiB are free on ", name_,
         "; ", allocated_ >> 20, " MiB were already taken by this model (", cudaGetErrorString(e), ")");
  }
  allocated_ += bytes;
  return p;
}

void CudaBackend::release(void* p) {
  flush_norm();
  if (p) cudaFree(p);
}

void CudaBackend::upload(void* dst, const void* src, size_t bytes) {
  flush_norm();
  if (bytes == 0) return;
  MMFP4_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload of ", bytes, " bytes");
  MMFP4_CUDA_CHECK(cudaStreamSynchronize(stream_), "upload of ", bytes, " bytes");
}

void CudaBackend::download(void* dst, const void* src, size_t bytes) {
  flush_norm();
  if (bytes == 0) return;
  MMFP4_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download of ", bytes,
                   " bytes (or an earlier op on the stream)");
  MMFP4_CUDA_CHECK(cudaStreamSynchronize(stream_), "download of ", bytes, " bytes (or an earlier op on the stream)");
}

size_t CudaBackend::free_memory() const {
  size_t f = 0, t = 0;
  if (cudaMemGetInfo(&f, &t) != cudaSuccess) return 0;
  return f;
}

void CudaBackend::sync() {
  flush_norm();
  MMFP4_CUDA_CHECK(cudaStreamSynchronize(stream_), "sync (an op queued earlier failed)");
}

void* CudaBackend::ws(Buffer& b, size_t bytes, const char* what) {
  if (bytes <= b.bytes) return b.p;
  if (capturing_)
    fail("CUDA backend: workspace '", what, "' needs ", bytes, " bytes while a step graph is recorded (",
         b.bytes, " reserved): reserve_workspace() was given too small a plan");
  if (graphs_made_)
    fail("CUDA backend: workspace '", what, "' would grow to ", bytes, " bytes after step graphs were recorded (",
         b.bytes, " reserved): a step larger than reserve_workspace()'s plan");
  sync();
  if (b.p) cudaFree(b.p);
  b.p = nullptr;
  b.bytes = 0;
  b.p = alloc(bytes, cat("workspace ", what));
  b.bytes = bytes;
  // Counters must start at zero; other buffers are written before they are read (padding columns of the
  // rotation buffers included), but zero them too so that no stale value can ever be read.
  MMFP4_CUDA_CHECK(cudaMemsetAsync(b.p, 0, bytes, stream_), "clear workspace ", what);
  sync();
  return b.p;
}

void CudaBackend::reserve_workspace(const WorkspacePlan& plan) {
  flush_norm();
  plan_ = plan;
  const int64_t T = std::max<int64_t>(plan.max_tokens, 1);
  // Rows: a step's tokens (padded to a token tile), or the head-major rows of MLA's per-head products.
  const int64_t xrows = std::max(round_up(T, 64) + 64, std::max<int64_t>(plan.max_heads, 1) * 64 + 64);
  ws(xb_, size_t(xrows * max_kpad_ * 2), "activations (16-bit)");
  ws(xb_lo_, size_t(xrows * max_kpad_ * 2), "activations (16-bit, low halves)");
  ws(rot_, size_t(T * max_kpad_ * 4), "rotated activations");
  ws(partial_, size_t(kPartialCapBytes), "split-K partials");
  ws(counters_, size_t(kCounterCapacity * 4), "split-K counters");
  counter_capacity_ = kCounterCapacity;
  ws(argmax_part_, size_t(argmax_part_bytes(int(T), sms_)), "argmax chunks");
  ws(argmax_ctr_, size_t(T * 4), "argmax counters");
  ws(attn_plan_, size_t(2 * T + 1) * 4, "attention blocks");
  if (plan.max_heads > 0)
    ws(attn_ctr_, size_t(std::min<int64_t>(T, kAttnSplitMaxTokens) * plan.max_heads * 4),
       "attention split counters");
  if (plan.max_heads > 0 && plan.max_kv_width > 0)
    ws(attn_part_, size_t(std::min<int64_t>(T, kAttnSplitMaxTokens) * plan.max_heads * kAttnMaxSplits *
                          (plan.max_kv_width + 2) * 4),
       "attention splits");
  if (max_experts_ > 0 && plan.max_top_k > 0) {
    const int64_t n = T * plan.max_top_k, E = max_experts_;
    const int64_t rows_pad = round_up(n + E * 7, 8), max_tiles = n / 8 + E + 1;
    ws(moe_sorted_, size_t(rows_pad * 4), "moe sorted rows");
    ws(moe_pos_, size_t(n * 4), "moe positions");
    ws(moe_tiles_, size_t(max_tiles * 3 * 4), "moe tiles");
    ws(moe_count_, 4, "moe tile count");
    const int64_t width = std::max(max_inter_pad_, max_hidden_pad_);
    ws(moe_g_, size_t(rows_pad * 2 * max_inter_pad_ * 4), "moe gate");  // [gate | up] when stacked
    ws(moe_u_, size_t(rows_pad * max_inter_pad_ * 4), "moe up");
    ws(moe_d_, size_t(rows_pad * max_hidden_pad_ * 4), "moe down");
    ws(moe_rot_, size_t(rows_pad * width * 4), "moe rotated activations");
    ws(xb_, size_t((rows_pad + 128) * round_up(width, 64) * 2), "activations (16-bit)");
    ws(xb_lo_, size_t((rows_pad + 128) * round_up(width, 64) * 2), "activations (16-bit, low halves)");
  }
  // Prefill on cuBLAS (cuda_backend_blas.cpp): the library, its workspace and the bf16 operand buffers of the
  // largest step, now (cuBLAS loads its kernels lazily; the first prefill pays that once, see docs/cuda.md).
  if (fast_.blas && T >= kBlasMinRows && blas()) {
    const int64_t H = std::max<int64_t>(plan.max_heads, 1), wpad = round_up(std::max<int64_t>(plan.max_kv_width, 8), 8);
    ws(abf_, size_t(std::max(T * round_up(max_kpad_, 8), plan.mla ? T * H * wpad : 0) * 2), "activations (bf16, cuBLAS)");
    if (max_dequant_bytes_ > 0) ws(wdq_, size_t(std::min(kDequantCapBytes, max_dequant_bytes_)), "dequantized weight slice");
    if (plan.mla && plan.max_heads > 0) {
      const int64_t keys = std::min(std::max(plan.max_context, T), kBlasAttnMaxKeys);
      ws(att_k_, size_t(keys * wpad * 2), "attention keys (bf16)");
      const int64_t sb = std::min(kAttnScoreCapBytes, T * H * round_up(keys, 8) * 4);
      ws(att_s_, size_t(sb), "attention scores");
      ws(att_p_, size_t(sb / 2), "attention probabilities");
    }
    warm_blas(plan);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Weights
// ---------------------------------------------------------------------------------------------------------------
// Uploads one weight, or a stack of experts (stack non-empty: all of equal shape and format; w is stack[0]). With
// `second` (same size, format and width, w.n a multiple of 16), expert e is stored as the rows of stack[e] followed by
// those of second[e]: one weight of w.n + second[0]->n rows per expert (gate+up as one GEMM, FastPaths::moe).
void CudaBackend::fill_linear(CudaLinear& out, const HostWeight& w, const std::vector<const HostWeight*>& stack,
                              const std::vector<const HostWeight*>& second) {
  static std::atomic<uint64_t> uploads{0};
  out.uid = ++uploads;
  const int64_t n2 = second.empty() ? 0 : second[0]->n;
  out.name = second.empty() ? w.name : w.name + " + " + second[0]->name;
  out.n = w.n + n2;
  out.k = w.k;
  out.format = w.format;
  out.hadamard_block = w.hadamard_block;
  GemmWeight& g = out.gw;
  g.n = int(w.n + n2);
  const int64_t E = int64_t(stack.size());
  if (w.format == WeightFormat::MMFP4) {
    out.k_stored = w.k_stored;
    g.kind = WKind::Fp4;
    g.k = int(w.k_stored);
    g.group_size = w.group_size;
    const int layout = fast_.dequant ? 2 : 1;
    g.layout = layout;
    std::vector<Fp4Tiles> tiles, tiles2;
    for (const HostWeight* h : stack) tiles.push_back(repack_fp4(*h, layout));
    for (const HostWeight* h : second) tiles2.push_back(repack_fp4(*h, layout));
    g.n_tiles = int(tiles[0].n_tiles + (tiles2.empty() ? 0 : tiles2[0].n_tiles));
    g.k_chunks = int(tiles[0].k_chunks);
    g.groups = int(tiles[0].groups);
    const size_t cw1 = tiles[0].codes.size(), sw1 = tiles[0].scales.size();
    const size_t cw2 = tiles2.empty() ? 0 : tiles2[0].codes.size(), sw2 = tiles2.empty() ? 0 : tiles2[0].scales.size();
    const size_t code_words = cw1 + cw2, scale_words = sw1 + sw2;
    g.expert_stride = int64_t(code_words / 4);
    g.expert_scale_stride = int64_t(scale_words);
    auto* codes = static_cast<uint32_t*>(alloc(code_words * 4 * size_t(E), out.name + " (MMFP4 tiles)"));
    auto* scales = static_cast<uint32_t*>(alloc(scale_words * 4 * size_t(E), out.name + " (scales)"));
    out.owned = {codes, scales};
    for (int64_t e = 0; e < E; ++e) {
      upload(codes + size_t(e) * code_words, tiles[size_t(e)].codes.data(), cw1 * 4);
      upload(scales + size_t(e) * scale_words, tiles[size_t(e)].scales.data(), sw1 * 4);
      if (!tiles2.empty()) {
        upload(codes + size_t(e) * code_words + cw1, tiles2[size_t(e)].codes.data(), cw2 * 4);
        upload(scales + size_t(e) * scale_words + sw1, tiles2[size_t(e)].scales.data(), sw2 * 4);
      }
    }
    g.data = codes;
    g.scales = scales;
    out.bytes = int64_t((code_words + scale_words) * 4 * size_t(E));
    out.mma_ok = w.group_size % 32 == 0;
    max_kpad_ = std::max<int64_t>(max_kpad_, int64_t(g.k_chunks) * 64);
    if (E == 1) max_dequant_bytes_ = std::max<int64_t>(max_dequant_bytes_, int64_t(g.n_tiles) * 16 * g.k_chunks * 64 * 2);
  } else {
    if (w.dtype != DType::F32 && w.dtype != DType::F16 && w.dtype != DType::BF16)
      fail(w.name, ": dense weights must be F32, F16 or BF16, got ", dtype_name(w.dtype));
    out.k_stored = w.k;
    g.kind = w.dtype == DType::BF16 ? WKind::Bf16 : w.dtype == DType::F16 ? WKind::F16 : WKind::F32;
    g.k = int(w.k);
    g.n_tiles = int(ceil_div(w.n + n2, 16));
    g.k_chunks = int(ceil_div(w.k, 64));
    const size_t b1 = size_t(w.n) * size_t(w.k) * dtype_size(w.dtype), b2 = size_t(n2) * size_t(w.k) * dtype_size(w.dtype);
    const size_t bytes = b1 + b2;
    g.expert_stride = (w.n + n2) * w.k;
    auto* data = static_cast<uint8_t*>(alloc(bytes * size_t(E), out.name));
    out.owned = {data};
    for (int64_t e = 0; e < E; ++e) {
      upload(data + size_t(e) * bytes, stack[size_t(e)]->data, b1);
      if (n2) upload(data + size_t(e) * bytes + b1, second[size_t(e)]->data, b2);
    }
    g.data = data;
    out.bytes = int64_t(bytes * size_t(E));
    out.mma_ok = g.kind != WKind::F32;
    max_kpad_ = std::max<int64_t>(max_kpad_, int64_t(g.k_chunks) * 64);
  }
  if (w.n + n2 > (int64_t(1) << 30) || w.k_stored > (int64_t(1) << 30))
    fail(w.name, ": shape [", w.n, ", ", w.k, "] is too large for the CUDA kernels");
  if (E == 1 && out.mma_ok)
    linear_shapes_.insert({g.kind, w.n + n2, product_width(g)});
  max_n_ = std::max<int64_t>(max_n_, w.n + n2);
}

// A view of rows [r0, r0 + n) of a stacked weight (r0 on a 16-row tile for MMFP4): no memory of its own.
static void row_view(CudaLinear& out, const CudaLinear& src, int64_t r0, int64_t n, const std::string& name) {
  out.name = name;
  out.n = n;
  out.k = src.k;
  out.format = src.format;
  out.hadamard_block = src.hadamard_block;
  out.k_stored = src.k_stored;
  out.mma_ok = src.mma_ok;
  out.gw = rows_of(src.gw, r0, n);
}

std::unique_ptr<LinearWeight> CudaBackend::upload_linear(const HostWeight& w) {
  auto out = std::make_unique<CudaLinear>();
  fill_linear(*out, w, {&w});
  return out;
}

std::unique_ptr<ExpertWeights> CudaBackend::upload_experts(const std::vector<HostWeight>& gate,
                                                           const std::vector<HostWeight>& up,
                                                           const std::vector<HostWeight>& down) {
  if (gate.empty() || gate.size() != up.size() || up.size() != down.size())
    fail("upload_experts: gate/up/down must hold the same non-zero number of experts");
  auto e = std::make_unique<CudaExperts>();
  e->n_experts = int64_t(gate.size());
  e->hidden = gate[0].k;
  e->inter = gate[0].n;
  auto stack = [](const std::vector<HostWeight>& v) {
    std::vector<const HostWeight*> s;
    for (const auto& h : v) {
      if (h.n != v[0].n || h.k != v[0].k || h.format != v[0].format || h.dtype != v[0].dtype ||
          h.group_size != v[0].group_size || h.hadamard_block != v[0].hadamard_block || h.k_stored != v[0].k_stored)
        fail(h.name, ": every expert of a layer must have the shape, format and rotation of expert 0 (", v[0].name,
             ")");
      s.push_back(&h);
    }
    return s;
  };
  const HostWeight &g0 = gate[0], &u0 = up[0];
  const bool stack_gu = fast_.moe && g0.n % 16 == 0 && g0.n == u0.n && g0.k == u0.k && g0.format == u0.format &&
                        g0.dtype == u0.dtype && g0.group_size == u0.group_size &&
                        g0.hadamard_block == u0.hadamard_block && g0.k_stored == u0.k_stored;
  if (stack_gu) {
    fill_linear(e->gate_up, g0, stack(gate), stack(up));
    row_view(e->gate, e->gate_up, 0, g0.n, g0.name);
    row_view(e->up, e->gate_up, g0.n, u0.n, u0.name);
  } else {
    fill_linear(e->gate, gate[0], stack(gate));
    fill_linear(e->up, up[0], stack(up));
  }
  fill_linear(e->down, down[0], stack(down));
  e->bytes = e->gate.bytes + e->up.bytes + e->gate_up.bytes + e->down.bytes;
  max_experts_ = std::max(max_experts_, e->n_experts);
  max_inter_pad_ = std::max<int64_t>(max_inter_pad_, std::max<int64_t>(round_up(e->inter, 64), e->down.k_stored));
  max_hidden_pad_ = std::max<int64_t>(max_hidden_pad_, std::max<int64_t>(round_up(e->hidden, 64), e->gate.k_stored));
  max_kpad_ = std::max({max_kpad_, round_up(max_inter_pad_, 64), round_up(max_hidden_pad_, 64)});
  return e;
}

// ---------------------------------------------------------------------------------------------------------------
// Linear layers
// ---------------------------------------------------------------------------------------------------------------
int CudaBackend::best_splits(int row_blocks, int tiles, int k_chunks, int tm, int64_t npad, int rows, WKind kind,
                             int blocks_per_sm) const {
  // Split K only for skinny products (decode). Blocks are scheduled dynamically, so the busiest SM runs
  // ceil(blocks / SMs) of them: choose the split that minimises those blocks' weight bytes plus the partial sums'
  // traffic (written and read once per split) and a fixed cost for the reduction's extra step.
  if (tm > 16 || k_chunks < 2) return 1;
  const int64_t blocks1 = int64_t(row_blocks) * tiles;
  // No split once the row blocks alone are several waves of resident blocks (blocks_per_sm: 3 or 4 for MMFP4's one
  // token tile, 3 for two, 2 for 16-bit weights). Measured for both kinds: the F16 lm_head at M=1 ran 4 splits in
  // 283 us and none in 241 us on the H100 (bench/results/cuda-ab-decode-869685a.txt).
  const int64_t capacity = int64_t(sms_) * blocks_per_sm;
  if (blocks1 >= 4 * capacity) return 1;
  if (kind == WKind::Fp4) {
    // MMFP4 keeps the partitioning its kernel was measured with (docs/cuda.md): whole waves of resident blocks, each
    // split of K paying ~2% for its partial sums.
    if (k_chunks < 4) return 1;
    double best_cost = 1e300;
    int best = 1;
    for (int s = 1; s <= 16 && s <= k_chunks / 2; ++s) {
      const int cps = int(ceil_div(k_chunks, s));
      const int se = int(ceil_div(k_chunks, cps));
      if (se != s && s > 1) continue;
      if (se > 1 && !splits_fit(tiles, se, tm, npad, row_blocks)) break;
      const double cost = double(ceil_div(blocks1 * se, capacity)) * cps * (1.0 + 0.02 * (se - 1)) + (se > 1 ? 1.0 : 0.0);
      if (cost < best_cost - 1e-9) {
        best_cost = cost;
        best = se;
      }
    }
    return best;
  }
  const double chunk_bytes = (kind == WKind::Fp4 ? 512.0 : 2048.0) * 8;  // one 64-column chunk of a block's 128 rows
  double best_cost = 1e300;
  int best = 1;
  for (int s = 1; s <= 32 && s <= k_chunks; ++s) {
    const int cps = int(ceil_div(k_chunks, s));
    const int se = int(ceil_div(k_chunks, cps));
    if (se != s) continue;
    if (se > 1 && !splits_fit(tiles, se, tm, npad, row_blocks)) break;
    const double busiest = double(ceil_div(blocks1 * se, sms_)) * cps * chunk_bytes;
    const double partials = se > 1 ? 2.0 * tiles * se * std::min(tm, rows) * double(npad) * 4 / sms_ + 16384 : 0;
    const double cost = busiest + partials;
    if (cost < best_cost * 0.98) {  // a split must win clearly: fewer splits are simpler and deterministic alike
      best_cost = cost;
      best = se;
    }
  }
  return best;
}

// Whether the partial sums of `splits` K splits (and the row blocks' counters) fit the workspace.
bool CudaBackend::splits_fit(int tiles, int splits, int tm, int64_t npad, int row_blocks) const {
  return int64_t(tiles) * splits * tm * npad * 4 <= int64_t(partial_.bytes) &&
         int64_t(tiles) * row_blocks <= counter_capacity_;
}

// The split of K of a tensor-core launch: one split for a plain linear that fills one resident wave, else the cost
// model's count (best_splits), capped by the test hook; then the rules of the launch: splits start on multiples of
// align chunks (a scale group of layout-2 MMFP4, which the raw decode loop needs), and a staged launch (stage_rows > 0
// rows, hi and lo if stage_split) takes more splits until its K split fits kStageMaxBytes (M 9..16 on a long K) while
// the partial sums fit.
SplitK CudaBackend::choose_splits(int row_blocks, int tiles, int k_chunks, int tm, int rows, WKind kind,
                                  int blocks_per_sm, int align, int stage_rows, bool stage_split) const {
  const int64_t npad = int64_t(row_blocks) * kBlockRows;
  auto stage_bytes = [&](int cps) { return staged_bytes(stage_rows, cps * 64 + 32, stage_split); };
  SplitK k;
  // An MMFP4 plain linear whose row blocks alone cover every SM, are all resident at once and stage their whole K:
  // each warp streams its tile's whole K, with no partial sums, no counter and no tail wave. On the H100 (docs/cuda.md,
  // twelfth session) 28672x8192 at M=1 5 splits 49.4 us -> 1 split 46.1 us (2.63 TB/s), M=2 49.8 -> 47.1 us. (Where
  // the whole K does not stage, the staging's own splits measured slower than the cost model's: M=4 52.6 -> 57.1 us
  // with 2 splits of 64 chunks, M=8 61.2 -> 63.7 with 4.) MoE tiles (tiles > 1) keep the cost model.
  if (kind == WKind::Fp4 && tm <= 16 && tiles == 1 && row_blocks >= sms_ &&
      row_blocks <= int64_t(sms_) * blocks_per_sm && (stage_rows == 0 || stage_bytes(k_chunks) <= kStageMaxBytes))
    k.splits = 1;
  else
    k.splits = best_splits(row_blocks, tiles, k_chunks, tm, npad, rows, kind, blocks_per_sm);
  if (max_splits_ > 0) k.splits = std::min(k.splits, max_splits_);
  k.cps = int(ceil_div(k_chunks, k.splits));
  if (k.splits > 1) {
    k.cps = int(round_up(k.cps, align));
    k.splits = int(ceil_div(k_chunks, k.cps));
  }
  // A K split the staging forces (M = 9..16 on a long K): the largest split of whole scale groups that fits
  // kStageMaxBytes, evened out over the splits it makes. On the H100 (twelfth session) 28672x8192 at M=16 10 splits
  // of 14 chunks 91.4 us -> 8 of 16 86.5 us, M=11/12 -5%; the GLM shapes and decode batch 12/16 unchanged. Halving
  // (below) is the rule before it, kept for MMFP4_CUDA_STAGE_SPLIT=halve: after a fit it finds nothing to do (where
  // the fitted splits' partial sums do not fit the workspace, more splits' would not either).
  if (stage_fit_ && stage_rows > 0 && stage_bytes(k.cps) > kStageMaxBytes) {
    int cps = std::max(align, k.cps / align * align);
    while (cps > align && stage_bytes(cps) > kStageMaxBytes) cps -= align;
    const int splits = int(ceil_div(k_chunks, cps));
    const int even = int(round_up(ceil_div(k_chunks, splits), align)), even_splits = int(ceil_div(k_chunks, even));
    if (splits_fit(tiles, even_splits, tm, npad, row_blocks)) {
      k.cps = even;
      k.splits = even_splits;
    }
  }
  while (stage_rows > 0 && stage_bytes(k.cps) > kStageMaxBytes && k.cps > align) {
    const int cps = int(round_up(k.cps / 2, align)), splits = int(ceil_div(k_chunks, cps));
    if (!splits_fit(tiles, splits, tm, npad, row_blocks)) break;
    k.cps = cps;
    k.splits = splits;
  }
  return k;
}

void CudaBackend::gemm(const GemmCall& c) {
  const GemmWeight& gw = c.gw;
  if (c.m == 0 || gw.n == 0) return;
  const bool mma = c.w->mma_ok && !force_generic_ && gw.row0 == 0;
  if (!mma && c.glu_off) fail(c.what, ": the fused silu input needs the tensor-core kernels");
  // Prefill-sized: bf16 on cuBLAS (FastPaths::blas), which may take the pending norm along (FastPaths::norm_blas).
  if (mma && c.m >= kBlasMinRows && gemm_blas(c)) return;
  // One to four tokens of a linear whose 16-row tiles fit one wave at a block each: a block of 16 warps per tile over
  // the whole K, summed in shared memory (gemv_token.cu, one "slot"; token t in the mma's column pair t). Plain
  // (FastPaths::gemv_one: o_proj at decode), with the pending norm computed while staging (FastPaths::token_norm:
  // q_a + kv_a), or the router with its routing, every tile in one block (FastPaths::token_router). Up to
  // token_gemv_tokens_ rows (MMFP4_CUDA_TOKEN_GEMV_TOKENS, measurement) in the uses that measured faster with them
  // (token_uses_*: plain and norm; the router takes one token).
  const bool token_path = route_req_.ids ? fast_.token_router : c.fuse_norm ? fast_.token_norm : fast_.gemv_one;
  const bool token_rows = c.m == 1 || (c.m <= token_gemv_tokens_ && (route_req_.ids ? token_uses_router_
                                                                       : c.fuse_norm ? token_uses_norm_
                                                                                     : token_uses_plain_));
  if (mma && token_path && fast_.raw_gemv && split_ && token_rows && !c.tiles.tiles && !c.glu_off &&
      gw.n_tiles <= sms_) {
    const bool norm = c.fuse_norm && pending_.on;
    const float* x = norm ? pending_.x.data : c.x;
    const int64_t xs = c.m == 1 ? 0 : norm ? pending_.x.stride : c.x_stride;
    int tpb = 1;
    if (route_req_.ids)
      while (tpb < gw.n_tiles) tpb *= 2;
    if (reinterpret_cast<uintptr_t>(x) % 16 == 0 && token_gemv_ok(gw, 1, c.k_valid, xs, tpb, c.m, norm) &&
        (!norm || (reinterpret_cast<uintptr_t>(pending_.w) % 16 == 0 &&
                   (c.m == 1 || (reinterpret_cast<uintptr_t>(pending_.out.data) % 16 == 0 &&
                                 pending_.out.stride % 4 == 0)))) &&
        (!route_req_.ids || (!c.accumulate && route_req_.E == gw.n && tpb <= 8))) {
      TokenGemvArgs a;
      a.w = gw;
      a.slots = 1;
      a.n_experts = 1;
      a.gu = x;
      a.gu_stride = xs;
      a.tokens = c.m;
      a.inter = c.k_valid;
      a.glu = false;
      a.accumulate = c.accumulate;
      a.out = c.y;
      a.out_stride = c.y_stride;
      a.tiles_per_block = tpb;
      if (norm) {
        a.norm_w = pending_.w;
        a.norm_eps = pending_.eps;
        a.norm_out = pending_.out.data;
        a.norm_out_stride = pending_.out.stride;
        pending_.on = false;
      }
      a.route = route_req_;
      route_req_ = RouteArgs{};
      launch_token_gemv(a, stream_);
      ++gemv_one_launches_;
      token_norm_launches_ += norm;
      token_router_launches_ += a.route.ids != nullptr;
      return;
    }
  }
  if (c.fuse_norm && (!mma || c.tiles.tiles || c.m > 16)) flush_norm();  // only the staged path computes the norm
  if (!mma) {
    GenericArgs a;
    a.w = gw;
    a.x = c.x;
    a.x_stride = c.x_stride;
    a.k = gw.k;
    a.m = c.m;
    a.row_map = c.row_map;
    a.row_div = c.row_div;
    a.map_is_mask = c.map_is_mask;
    a.tiles = c.tiles;
    a.grid_tiles = c.max_tiles;
    a.y = c.y;
    a.y_stride = c.y_stride;
    a.accumulate = c.accumulate;
    if (c.k_valid < gw.k)
      fail(c.what, " ", c.w->name, ": the generic kernel needs the input's full stored width ", gw.k, " (got ",
           c.k_valid, ")");
    launch_gemm_generic(a, stream_);
    return;
  }
  // Token tiles of 8 * nt rows: as few as cover the rows (decode: one n8 tile). The tiled GEMM (more than 16 rows)
  // takes 64 or 128 rows per tile.
  const int rows_pad = int(round_up(c.m, 8));
  const bool tiled = tiled_ok(*c.w) && (c.tiles.tiles ? c.tile_rows >= 64 : c.m > 16);
  const bool dense_tiles = fast_.dense_tiles && gw.kind != WKind::Fp4 && !c.tiles.tiles && !tiled;
  int nt, grid_tiles;
  if (c.tiles.tiles) {
    nt = c.tile_rows / 8;
    grid_tiles = c.max_tiles;
  } else if (tiled) {
    // 32-token tiles where they run on wgmma (half the activation traffic and tensor work of 64; gemm_tiled_wg.cu):
    // up to 32 rows, and up to 64 for a weight that stays in L2 while the second tile's blocks read it again. On the
    // H100 (bench/results/cuda-ab-wgmma-*): 28672x8192 (121 MB) at M=32 255 -> 141 us, but at M=64 two 32-token
    // tiles 258 us vs one 64-token tile 228; the GLM weights (<= 21 MB) at M=64 -2..-25% with two.
    const bool wg32 = fast_.wgmma && wgmma_ok_ && gemm_tiled_wg_weight_ok(gw) &&
                      (c.m <= 32 || (c.m <= 64 && c.w->bytes <= wg_two_tile_bytes_));
    nt = wg32 ? 4 : c.m <= 64 ? 8 : 16;
    grid_tiles = int(ceil_div(c.m, 8 * nt));
  } else {
    const int mt = rows_pad / 8;
    nt = mt <= 1 ? 1 : mt <= 2 ? 2 : mt <= 4 ? 4 : 8;
    // 16-bit dense weights (FastPaths::dense_tiles; the lm_head at decode batches over 16): their token tiles are
    // launched token tile first (GemmArgs::tile_major, launch_mma), so the tiles of a row block run together and all
    // but the first find its weight rows in L2; at 17..48 rows as 16-row tiles, instead of a 32- or 64-row tile,
    // whose warp holds 4 or 8 token tiles of accumulators and fragments (179..254 registers, one block per SM). On
    // the H100 (docs/cuda.md, thirteenth session) the F16 lm_head at M=17..32 435..450 -> 357..372 us, M=33..48
    // 574..578 -> 489..506, decode batches 17..48 +0.1..1.1%. At 64 rows four 16-row tiles measured slower than one
    // 64-row tile (580 -> 677 us), at 127 eight slower than two (1,135 -> 1,215): from 49 rows the tiles stay 64
    // rows, and two or more of them, token tile first, M=65..127 1,127..1,142 -> 1,037..1,047 us, M=256 (without
    // cuBLAS, as in a captured step) 2,223..2,234 -> 2,007..2,009.
    if (dense_tiles && c.m <= 48) nt = std::min(nt, 2);
    grid_tiles = int(ceil_div(mt, nt));
  }
  if (!tiled && nt > 8) fail(c.what, ": ", 8 * nt, "-row token tiles need the tiled GEMM");
  // A warp reads all 8 * nt rows of its token tile: the prepared buffer covers the last tile (zero rows).
  const int xb_rows = c.tiles.tiles ? rows_pad + 8 * nt : grid_tiles * 8 * nt;
  // Activations -> 16-bit fragments.
  const int kb32 = gw.k_chunks * 2;
  PrepArgs pa;
  pa.x = c.x;
  pa.x_stride = c.x_stride;
  pa.m = c.m;
  pa.k_valid = std::min(c.k_valid, kb32 * 32);
  pa.row_map = c.row_map;
  pa.row_div = c.row_div;
  pa.map_is_mask = c.map_is_mask;
  pa.glu_off = c.glu_off;
  pa.rows_pad = xb_rows;
  pa.kb32 = kb32;
  pa.f16 = gw.kind == WKind::F16;
  pa.xb = ws(xb_, size_t(xb_rows) * size_t(kb32) * 32 * 2, "activations (16-bit)");
  // Split activations, except (MMFP4_CUDA_PREFILL_BF16) in tiled GEMMs of >= 128 rows (MoE: 128-row tiles): one
  // bf16 value, half the tensor work for compute-bound prefill, 2^-9 relative rounding of the activations.
  // Prefill-sized MoE steps with the cuBLAS path on (c.prefill): the same single bf16 activation in their tiles, as the
  // rest of the prefill's products.
  const bool big = c.tiles.tiles ? c.tile_rows >= 128 : rows_pad >= 128;
  const bool one_bf16 = !c.w->exact && tiled && ((fast_.prefill_bf16 && big) || (c.prefill && c.tiles.tiles));
  if (split_ && !one_bf16)
    pa.xb_lo = ws(xb_lo_, size_t(xb_rows) * size_t(kb32) * 32 * 2, "activations (16-bit, low halves)");

  GemmArgs a;
  a.w = gw;
  a.xb = pa.xb;
  a.xb_lo = pa.xb_lo;
  a.kb32 = kb32;
  a.m = c.m;
  a.y = c.y;
  a.y_stride = c.y_stride;
  a.accumulate = c.accumulate;
  a.tiles = c.tiles;
  a.nt = nt;
  a.grid_tiles = grid_tiles;
  if (a.grid_tiles > 65535) fail(c.what, ": too many token tiles (", a.grid_tiles, ")");
  if (tiled) {
    launch_tiled(a, pa);
    return;
  }
  launch_mma(a, c.tiles.tiles ? 8 * nt : c.m, pa, c.fuse_norm && pending_.on);
}

// The tiled GEMM takes MMFP4 weights on the tensor-core path (FastPaths::gemm).
bool CudaBackend::tiled_ok(const CudaLinear& w) const {
  return fast_.gemm && !force_generic_ && w.mma_ok && w.gw.kind == WKind::Fp4 && w.gw.row0 == 0;
}

// Prepared activations, split of K (few blocks: decode batches and small weights) and the tiled launch.
void CudaBackend::launch_tiled(GemmArgs& a, const PrepArgs& pa) {
  const GemmWeight& gw = a.w;
  const int row_blocks = int(ceil_div(gw.n_tiles, 8)), bn = 8 * a.nt;
  const int64_t blocks = int64_t(row_blocks) * a.grid_tiles, npad = int64_t(row_blocks) * kBlockRows;
  const bool wg = fast_.wgmma && wgmma_ok_ && gemm_tiled_wg_ok(a);  // 32/64-token tiles on wgmma (gemm_tiled_wg.cu)
  // ~2 blocks per SM for 64-token tiles (registers allow two) and on wgmma, ~1 for 128; at least 4 chunks per split.
  const int64_t target = int64_t(sms_) * (bn == 64 || wg ? 2 : 1);
  int splits = 1;
  if (blocks < target && gw.k_chunks >= 8) {
    // wgmma tiles: as many splits as fit the resident blocks (rounded down), not one more that starts a second
    // wave of a few blocks. On the H100 (cuda-ab-wgmma-07538e6.txt, part 9): kv_b at M=64 23.0 -> 12.8 us, o 35 ->
    // 25, 28672x8192 at M=17..64 -8..-13%; the others unchanged.
    const int64_t want = wg ? std::max<int64_t>(1, target / blocks) : ceil_div(target, blocks);
    splits = int(std::min<int64_t>({want, gw.k_chunks / 4, 16}));
  }
  while (splits > 1 && (int64_t(a.grid_tiles) * splits * bn * npad * 4 > int64_t(partial_.bytes) ||
                        int64_t(a.grid_tiles) * row_blocks > counter_capacity_))
    --splits;
  a.cps = int(ceil_div(gw.k_chunks, splits));
  a.splits = int(ceil_div(gw.k_chunks, a.cps));
  if (a.splits > 1) {
    a.partial = static_cast<float*>(partial_.p);
    a.counters = static_cast<int32_t*>(counters_.p);
  }
  a.stage = false;
  PrepArgs p = pa;
  p.wg_order = wg;
  launch_prepare_activations(p, stream_);
  if (wg)
    launch_gemm_tiled_wg(a, stream_);
  else
    launch_gemm_tiled(a, stream_);
  wgmma_launches_ += wg;
}

namespace {
// fp32 rows that the staging can read with 16-byte loads (GemmArgs::stage_vec).
bool rows_vec_ok(const float* x, int64_t stride) {
  return stride % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
}
// Activations staged by the GEMM (GemmArgs::stage): `rows` rows of pa's input over `cols` columns of K (a split's, or
// all of it), hi + lo, each row padded by 32 values (stage_activations).
void stage_from(GemmArgs& a, const PrepArgs& pa, int rows, int cols) {
  a.stage = true;
  a.stage_rows = rows;
  a.stage_stride = cols + 32;
  a.stage_lo = stage_lo_offset(rows, a.stage_stride);
  a.prep = pa;
  a.stage_vec = rows_vec_ok(pa.x, pa.x_stride);
}
}  // namespace

// The pending norm (FastPaths::norm) computed by a staged launch: x is its input, the GEMM normalises the rows it
// stages (stage_activations) and writes them to the norm's output.
void CudaBackend::take_norm(GemmArgs& a) {
  a.prep.x = pending_.x.data;
  a.prep.x_stride = pending_.x.stride;
  a.stage_vec = rows_vec_ok(a.prep.x, a.prep.x_stride);
  a.norm_w = pending_.w;
  a.norm_eps = pending_.eps;
  a.norm_out = pending_.out.data;
  a.norm_out_stride = pending_.out.stride;
  pending_.on = false;
}

// Group-index shift, split of K and partial-sum buffers of a tensor-core launch; the activations are prepared by
// their own kernel, or staged inside the GEMM (FastPaths::prep: one or two n8 token tiles whose rows and K split fit
// kStageMaxBytes of shared memory: the decode shapes). Then launches it.
void CudaBackend::launch_mma(GemmArgs& a, int rows, const PrepArgs& pa, bool fuse_norm) {
  const GemmWeight& gw = a.w;
  if (gw.kind == WKind::Fp4) {
    const int per = gw.group_size / 32;
    if ((per & (per - 1)) == 0) a.gshift = __builtin_ctz(unsigned(per));
  }
  a.raw = fast_.raw_gemv;
  a.stage_batch = fast_.stage_batch;  // (read by the whole-K launch's staging only)
  // 5..16 rows of a weight with 8..15 tiles per SM (FastPaths::whole_k, gemv_whole_k.cu): a block per SM, each tile
  // over all of K, fed by the copy engine (sm_90: where the sm_90a pass runs; the simulator too). A pending norm is
  // computed first (its own kernel), then the activations are prepared for the raw decode (PrepArgs::raw). On the H100
  // (docs/cuda.md, fourteenth session) 28672x8192 at M=16 86.6 -> 55.5-58.2 us, M=8 61.3 -> 49.9-50.2, M=5 58.9 ->
  // 49.5-49.8.
  a.whole_k_tiles = 0;
  // A plan's MoE token tiles of 8 or 16 rows (FastPaths::moe_stream, moe_stream.cu): prepared activations (raw), then
  // one block per SM streaming an equal share of the (token tile, weight tile) pairs. (moe_stream_ok checks the
  // tiles, formats and activations; here only what the backend holds.)
  if (fast_.moe_stream && fast_.raw_gemv && bulk_copy_ok_ && !route_req_.ids && max_splits_ == 0 && moe_stream_ok(a)) {
    if (fuse_norm) flush_norm();
    PrepArgs p = pa;
    p.raw = true;
    launch_prepare_activations(p, stream_);
    launch_moe_stream(a, moe_stream_blocks_ > 0 ? moe_stream_blocks_ : sms_, stream_);
    ++moe_stream_launches_;
    return;
  }
  // 1..4 rows (FastPaths::whole_k_pair) where a block's codes over all of K fit its shared memory (gemm_whole_k_ok:
  // GLM's 20480x2048 dense MLP; not 28672x8192, where the paired loop measured as fast at M=1 and faster at 2..4):
  // the same launch, the rows staged in the block over all of K (a pending norm computed there, as in the staged
  // loop) and paired in the mma columns (GemmArgs::pair). On the H100 (docs/cuda.md, fifteenth session) 20480x2048
  // at M=1 11.9 -> 9.9-10.1 us, M=4 13.1 -> 11.5-11.6.
  if (fast_.whole_k_pair && fast_.prep && bulk_copy_ok_ && !a.tiles.tiles && !a.heads && a.m <= 4 && a.nt == 1 &&
      pa.xb_lo && !pa.f16 && !route_req_.ids && max_splits_ == 0) {
    a.whole_k_tiles = gemm_whole_k_tiles(gw, whole_k_sms_ > 0 ? whole_k_sms_ : sms_);
    stage_from(a, pa, a.m, gw.k_chunks * 64);
    if (a.whole_k_tiles > 0 && gemm_whole_k_ok(a)) {
      if (fuse_norm) take_norm(a);
      launch_gemm_whole_k(a, stream_);
      ++whole_k_launches_;
      return;
    }
    a.whole_k_tiles = 0;
    a.stage = false;
  }
  if (fast_.whole_k && bulk_copy_ok_ && !a.tiles.tiles && !a.heads && a.m > 4 && pa.xb_lo && !pa.f16 &&
      !route_req_.ids && max_splits_ == 0) {
    a.whole_k_tiles = gemm_whole_k_tiles(gw, whole_k_sms_ > 0 ? whole_k_sms_ : sms_);
    if (a.whole_k_tiles > 0 && gemm_whole_k_ok(a)) {
      if (fuse_norm) flush_norm();
      PrepArgs p = pa;
      p.raw = true;
      launch_prepare_activations(p, stream_);
      launch_gemm_whole_k(a, stream_);
      ++whole_k_launches_;
      return;
    }
    a.whole_k_tiles = 0;
  }
  const int row_blocks = int(ceil_div(gw.n_tiles, 8));
  a.stage = false;
  // Rows to stage: the most a token tile holds (one for the direct MoE tiles of one token).
  const int srows = a.tiles.direct ? 1
                    : a.tiles.tiles ? 8 * a.nt
                    : a.heads       ? std::min(8 * a.nt, a.head_tokens)
                                    : std::min(8 * a.nt, a.m);
  const bool staged = fast_.prep && a.nt <= 2 && srows > 0;
  // Chunks per scale group: the raw loop (layout 2) takes only splits that start on one.
  const int align = gw.kind == WKind::Fp4 && gw.layout == 2 && a.gshift >= 2 ? 1 << (a.gshift - 1) : 1;
  // The router's routing (moe_router): only where one block holds every logit of the token rows.
  const bool routing = route_req_.ids && row_blocks == 1 && a.grid_tiles == 1 && a.nt == 1 && !a.tiles.tiles &&
                       !a.heads && a.m <= 8;
  // K split across the warps of a block (FastPaths::gemv_kwarps, GemmArgs::kslices): a raw launch of one or two
  // token tiles whose whole K fits the staging takes the fewest weight tiles per block (1, 2 or 4) whose blocks all
  // fit one wave of resident blocks; its slices' sums meet in shared memory, instead of K splits' partial sums
  // meeting in global memory through a counter and the last block to finish. Not under a cap on K splits
  // (set_max_splits: tests and measurements of the split path), not for the router's launch (one block holding
  // every logit, 2 K slices: decode batch 1 -1.5%, batch 4 -2.5%) nor for the plan's MoE tiles (batch 4 -5%); H100
  // numbers in docs/cuda.md.
  a.kslices = 1;
  if (fast_.gemv_kwarps && max_splits_ == 0 && staged && a.nt <= 2 && !routing && (!a.tiles.tiles || a.tiles.direct) &&
      a.raw && gw.kind == WKind::Fp4 && gw.layout == 2 && a.gshift >= 2 && pa.xb_lo && !pa.f16 &&
      staged_bytes(srows, gw.k_chunks * 64 + 32, true) <= kStageMaxBytes) {
    const int64_t wave = int64_t(sms_) * (a.tiles.tiles || a.heads ? 4 : 3);  // blocks per SM (gemm_mma_blocks_per_sm)
    for (int tpb = 1; tpb <= 4 && a.kslices == 1; tpb *= 2)
      if (ceil_div(gw.n_tiles, tpb) * a.grid_tiles <= wave) a.kslices = 8 / tpb;
  }
  // One token tile of a 16-bit dense weight with a tile for every warp of the persistent launch (FastPaths::
  // dense_persist, gemv_dense.cu; the lm_head at decode): no K split, the launch spreads the tiles over its warps.
  const bool persist = fast_.dense_persist && gw.kind != WKind::Fp4 && staged && a.nt == 1 && a.grid_tiles == 1 &&
                       !a.tiles.tiles && !a.heads && !routing &&
                       gw.n_tiles >= int64_t(dense_token_blocks_max(sms_)) * 8 &&
                       staged_bytes(srows, gw.k_chunks * 64 + 32, pa.xb_lo != nullptr) <= kStageMaxBytes;
  SplitK k;
  if (persist) {
    k.splits = 1;
    k.cps = gw.k_chunks;
  } else if (a.kslices > 1) {
    k.splits = 1;
    k.cps = gw.k_chunks;
    a.slice_chunks = int(round_up(ceil_div(gw.k_chunks, a.kslices), 2));  // whole chunk pairs (one scale each)
  } else {
    k = choose_splits(row_blocks, a.grid_tiles, gw.k_chunks, 8 * a.nt, rows, gw.kind, gemm_mma_blocks_per_sm(a), align,
                      staged && gw.kind == WKind::Fp4 ? srows : 0, pa.xb_lo != nullptr);
  }
  a.splits = k.splits;
  a.cps = k.cps;
  if (a.splits > 1) {
    a.partial = static_cast<float*>(partial_.p);
    a.counters = static_cast<int32_t*>(counters_.p);
  }
  if (staged) {
    const int stride = a.cps * 64 + 32;
    if (staged_bytes(srows, stride, pa.xb_lo != nullptr) <= kStageMaxBytes) stage_from(a, pa, srows, a.cps * 64);
  }
  // Token tile first (FastPaths::dense_tiles; the tile size is gemm's): several token tiles of a 16-bit weight that
  // do not stage (staged loops keep the row-block-first grid).
  a.tile_major = fast_.dense_tiles && gw.kind != WKind::Fp4 && !a.tiles.tiles && !a.heads && a.grid_tiles > 1 &&
                 !a.stage;
  dense_tile_launches_ += a.tile_major;
  if (fuse_norm && a.stage) {
    take_norm(a);
  } else if (fuse_norm) {
    flush_norm();
  }
  // Few blocks (a launch that fits one wave at 2 blocks per SM, with the split chosen for 3): the raw loop with
  // registers for 2 blocks per SM, whose chunk pairs overlap (GemmArgs::wide). On the H100 (bench/results/
  // cuda-ab-decode-869685a.txt): q_a 5.9 -> 5.4 us, q_b 6.1 -> 5.6, o 8.6 -> 7.6 at M=1, o 16.0 -> 14.4 at M=16;
  // decode batch 1 +0..2.5%, batch 12/16 +1.5..3%; MLA's per-head W_UV at decode (heads, one token tile) too: batch 1
  // +2%. Where the launch has more blocks, fewer resident warps cost more (28672x8192 at M=1 51 -> 60 us): those
  // keep 3 per SM.
  const int64_t blocks = ceil_div(gw.n_tiles, 8 / a.kslices) * a.grid_tiles * a.splits;
  a.wide = fast_.gemv_wide && (a.nt == 1 || (a.nt == 2 && !a.heads)) && !a.tiles.tiles && blocks <= 2 * int64_t(sms_);
  a.pair = fast_.gemv_pair && a.stage && a.nt == 1 && a.stage_rows <= 4 && gemm_mma_raw_ok(a);
  MMFP4_ASSERT(a.kslices == 1 || gemm_mma_raw_ok(a));  // the eligibility above is the raw loop's
  if (routing) {
    a.route = route_req_;
    route_req_ = RouteArgs{};
  }
  if (!a.stage) launch_prepare_activations(pa, stream_);
  // One token tile of a 16-bit dense weight (the lm_head at decode) on persistent blocks (FastPaths::dense_persist,
  // gemv_dense.cu): the activations staged once per block instead of once per 128 rows, the first loads before the
  // wait, no part-full last wave; the same bits.
  if (persist && dense_token_ok(a)) {
    a.persist_blocks = dense_token_blocks(a, sms_);
    launch_dense_token(a, stream_);
    ++dense_persist_launches_;
    return;
  }
  launch_gemm_mma(a, stream_);
  gemv_wide_launches_ += a.wide && gemm_mma_raw_ok(a);
  gemv_pair_launches_ += a.pair;
  gemv_kwarps_launches_ += a.kslices > 1;
}

void CudaBackend::linear(Act x, const LinearWeight& w_in, Act out, bool accumulate, bool input_rotated) {
  flush_prep();  // (flush_norm below may not run: the pending norm can be fused)
  const auto& w = static_cast<const CudaLinear&>(w_in);
  // The pending norm's output is this linear's input (and nothing else here touches it): compute it in the GEMM.
  const bool fuse = pending_.on && x.data == pending_.out.data && x.rows == pending_.out.rows &&
                    x.cols == pending_.out.cols && x.stride == pending_.out.stride &&
                    !(w.hadamard_block > 0 && !input_rotated) && !may_overlap(out, pending_.out) &&
                    !may_overlap(out, pending_.x);
  if (!fuse) flush_norm();
  const int64_t want_k = input_rotated ? w.k_stored : w.k;
  if (x.cols != want_k || out.cols != w.n || out.rows != x.rows)
    fail("linear ", w.name, " [", w.n, ", ", w.k, "]: x is [", x.rows, ", ", x.cols, "], out [", out.rows, ", ",
         out.cols, "]");
  if (x.rows == 0) return;
  GemmCall c;
  c.w = &w;
  c.gw = w.gw;
  c.x = x.data;
  c.x_stride = x.stride;
  c.k_valid = int(x.cols);
  c.m = int(x.rows);
  c.y = out.data;
  c.y_stride = out.stride;
  c.accumulate = accumulate;
  c.fuse_norm = fuse;
  c.what = "linear";
  if (w.hadamard_block > 0 && !input_rotated) {
    // y = W' (H x): zero-pad x to the stored width and rotate block-wise (docs/format.md section 4).
    auto* r = static_cast<float*>(ws(rot_, size_t(x.rows * w.k_stored * 4), "rotated activations"));
    launch_rotate_pad(x.data, x.stride, int(x.rows), int(x.cols), int(w.k_stored), w.hadamard_block, r, stream_);
    c.x = r;
    c.x_stride = w.k_stored;
    c.k_valid = int(w.k_stored);
  }
  gemm(c);
}

void CudaBackend::hadamard(Act x, int block) {
  flush_norm();
  if (block <= 0 || x.cols % block != 0)
    fail("hadamard: block ", block, " does not divide the ", x.cols, " columns");
  launch_hadamard(x.data, x.stride, int(x.rows), int(x.cols), block, stream_);
}

// ---------------------------------------------------------------------------------------------------------------
// Element-wise and row ops
// ---------------------------------------------------------------------------------------------------------------
void CudaBackend::embed(const LinearWeight& table_in, const BatchMeta& b, Act out) {
  flush_norm();
  const auto& t = static_cast<const CudaLinear&>(table_in);
  if (out.cols != t.k || out.rows != b.n_tokens)
    fail("embed ", t.name, " [", t.n, ", ", t.k, "]: out is [", out.rows, ", ", out.cols, "] for ", b.n_tokens,
         " tokens");
  launch_embed(t.gw, t.hadamard_block, b.tokens, int(b.n_tokens), int(t.n), out.data, out.stride, int(out.cols),
               stream_);
}

void CudaBackend::rmsnorm(Act x, const DeviceVector& w, float eps, Act out) {
  flush_norm();
  if (w.n != x.cols || out.cols != x.cols || out.rows != x.rows)
    fail("rmsnorm: x [", x.rows, ", ", x.cols, "], weight [", w.n, "], out [", out.rows, ", ", out.cols, "]");
  // Decode: an out-of-place norm is held back, so that the next linear can compute it while staging its input.
  // Prefill: so that the next linear, on cuBLAS, gets its bf16 input from the norm instead of a conversion pass.
  const bool decode = fast_.prep && x.rows > 0 && x.rows <= 16;
  const bool prefill = fast_.norm_blas && fast_.blas && !capturing_ && x.rows >= kBlasMinRows;
  if (fast_.norm && (decode || prefill) && !may_overlap(x, out)) {
    pending_ = PendingNorm{true, x, out, w.data, eps};
    return;
  }
  launch_rmsnorm(x.data, x.stride, out.data, out.stride, int(x.rows), int(x.cols), w.data, eps, stream_);
}

// The held MLA launches: a prepare (before absorb_q) or an attention (before expand_v); at most one is held.
void CudaBackend::flush_prep() {
  if (attn_pending_) {
    attn_pending_ = false;
    run_attention(pending_attn_);
  }
  if (!prep_pending_) return;
  prep_pending_ = false;
  launch_mla_prepare(pending_prep_, stream_);
}

void CudaBackend::flush_norm() {
  flush_prep();
  if (!pending_.on) return;
  pending_.on = false;
  const PendingNorm& n = pending_;
  launch_rmsnorm(n.x.data, n.x.stride, n.out.data, n.out.stride, int(n.x.rows), int(n.x.cols), n.w, n.eps, stream_);
}

void CudaBackend::rope(Act x, int64_t heads, int64_t head_stride, int64_t off, const RopeTable& t, const BatchMeta& b) {
  flush_norm();
  if (off + t.dim > head_stride && heads > 1) fail("rope: rotary width ", t.dim, " at ", off, " exceeds the head");
  if ((heads - 1) * head_stride + off + t.dim > x.cols)
    fail("rope: ", heads, " heads of stride ", head_stride, " exceed the ", x.cols, " columns");
  launch_rope(x.data, x.stride, int(x.rows), int(heads), head_stride, int(off), t.cos, t.sin, t.dim, t.interleaved,
              b.positions, int(t.max_positions), stream_);
}

void CudaBackend::silu_mul(Act gate, Act up, Act out) {
  flush_norm();
  if (up.rows != gate.rows || up.cols != gate.cols || out.rows != gate.rows || out.cols != gate.cols)
    fail("silu_mul: gate [", gate.rows, ", ", gate.cols, "], up [", up.rows, ", ", up.cols, "], out [", out.rows,
         ", ", out.cols, "]");
  launch_silu_mul(gate.data, gate.stride, up.data, up.stride, out.data, out.stride, int(gate.rows), int(gate.cols),
                  stream_);
}

void CudaBackend::add(Act x, Act y) {
  flush_norm();
  if (x.rows != y.rows || x.cols != y.cols) fail("add: [", x.rows, ", ", x.cols, "] += [", y.rows, ", ", y.cols, "]");
  launch_add(x.data, x.stride, y.data, y.stride, int(x.rows), int(x.cols), stream_);
}

void CudaBackend::add_bias(Act x, const DeviceVector& bias) {
  flush_norm();
  if (bias.n != x.cols) fail("add_bias: x [", x.rows, ", ", x.cols, "], bias [", bias.n, "]");
  launch_add_bias(x.data, x.stride, int(x.rows), int(x.cols), bias.data, stream_);
}

void CudaBackend::gather_rows(Act x, const int32_t* rows, int64_t n, Act out) {
  flush_norm();
  if (out.cols != x.cols || out.rows < n) fail("gather_rows: x [", x.rows, ", ", x.cols, "] -> ", n, " rows");
  launch_gather_rows(x.data, x.stride, rows, int(n), int(x.cols), out.data, out.stride, stream_);
}

double CudaBackend::device_read_gbs(size_t bytes) {
  flush_norm();
  // Whatever fits: up to `bytes`, leaving 1 GiB free, at least 4x the L2 (else no measurement).
  size_t f = free_memory();
  f = f > (size_t(1) << 30) ? f - (size_t(1) << 30) : 0;
  bytes = std::min(bytes, f) & ~size_t(4095);
  if (bytes < (size_t(256) << 20)) return 0;
  void* buf = nullptr;
  void* sink = nullptr;
  if (cudaMalloc(&buf, bytes) != cudaSuccess || cudaMalloc(&sink, size_t(16) * 8 * sms_) != cudaSuccess) {
    cudaGetLastError();
    if (buf) cudaFree(buf);
    return 0;
  }
  double gbs = 0;
  try {
    MMFP4_CUDA_CHECK(cudaMemsetAsync(buf, 1, bytes, stream_), "read bandwidth buffer");
    gbs = measure_read_bandwidth(buf, bytes, sink, sms_, 5, stream_);
  } catch (...) {
    cudaFree(buf);
    cudaFree(sink);
    throw;
  }
  cudaFree(buf);
  cudaFree(sink);
  return gbs;
}

void CudaBackend::argmax_rows(Act x, int32_t* ids) {
  flush_norm();
  void* part = ws(argmax_part_, size_t(argmax_part_bytes(int(x.rows), sms_)), "argmax chunks");
  auto* ctr = static_cast<int32_t*>(ws(argmax_ctr_, size_t(x.rows) * 4, "argmax counters"));
  launch_argmax_rows(x.data, x.stride, int(x.rows), int(x.cols), sms_, part, ctr, ids, stream_);
}

// ---------------------------------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------------------------------
void CudaBackend::kv_store(const KVLayerView& kv, Act k, Act v, const BatchMeta& b) {
  flush_norm();
  if (!kv_ok(kv) || kv.width != k.cols + v.cols || k.rows != b.n_tokens || v.rows != b.n_tokens)
    fail("kv_store: cache ", dtype_name(kv.dtype), " width ", kv.width, ", k [", k.rows, ", ", k.cols, "], v [",
         v.rows, ", ", v.cols, "] for ", b.n_tokens, " tokens");
  launch_store_rows(kv.data, kv.dtype == DType::F32, kv.width, b.slots, int(b.n_tokens), k.data, k.stride,
                    int(k.cols), v.data, v.stride, int(v.cols), stream_);
}

void CudaBackend::mla_store(const KVLayerView& kv, Act latent, Act kpe, const BatchMeta& b) {
  flush_norm();
  if (!kv_ok(kv) || kv.width != latent.cols + kpe.cols || latent.rows != b.n_tokens)
    fail("mla_store: cache ", dtype_name(kv.dtype), " width ", kv.width, ", latent [", latent.rows, ", ",
         latent.cols, "], kpe [", kpe.rows, ", ", kpe.cols, "]");
  launch_store_rows(kv.data, kv.dtype == DType::F32, kv.width, b.slots, int(b.n_tokens), latent.data, latent.stride,
                    int(latent.cols), kpe.data, kpe.stride, int(kpe.cols), stream_);
}

void CudaBackend::attention(Act q, const KVLayerView& kv, int64_t heads, int64_t kv_heads, int64_t D, float scale,
                            const BatchMeta& b, Act out) {
  flush_norm();
  if (!kv_ok(kv) || heads % kv_heads != 0 || q.cols < heads * D || out.cols < heads * D ||
      kv.width != 2 * kv_heads * D || q.rows != b.n_tokens)
    fail("attention: q [", q.rows, ", ", q.cols, "], ", heads, " heads / ", kv_heads, " kv heads of ", D,
         ", cache width ", kv.width, " (", dtype_name(kv.dtype), ")");
  if (D > 512) fail("attention: head_dim ", D, " > 512 is not supported by the CUDA kernel");
  AttnArgs a;
  a.q1 = q.data;
  a.q_row_stride = q.stride;
  a.q_head_stride = D;
  a.d1 = int(D);
  a.dv = int(D);
  a.heads = int(heads);
  a.kv_heads = int(kv_heads);
  a.k_off_per_kvh = D;
  a.v_off = kv_heads * D;
  a.v_off_per_kvh = D;
  set_cache(a, kv, b, scale);
  a.out = out.data;
  a.out_row_stride = out.stride;
  a.out_head_stride = D;
  run_attention(a);
}

void CudaBackend::mla_prepare(Act ckv, const DeviceVector& norm_w, float eps, Act latent, Act q, int64_t heads,
                              int64_t head_stride, int64_t q_off, int had, const RopeTable& t, const KVLayerView& kv,
                              const BatchMeta& b) {
  const int64_t R = latent.cols, P = ckv.cols - R;
  const bool ok = fast_.mla_prep && had == 0 && kv_ok(kv) && kv.width == R + P && t.dim == P && P % 2 == 0 &&
                  norm_w.n == R && latent.rows == ckv.rows && q.rows == ckv.rows && ckv.rows == b.n_tokens &&
                  (heads - 1) * head_stride + q_off + P <= q.cols && q_off + P <= head_stride;
  if (!ok) {
    Backend::mla_prepare(ckv, norm_w, eps, latent, q, heads, head_stride, q_off, had, t, kv, b);
    return;
  }
  flush_norm();
  MlaPrepArgs a;
  a.ckv = ckv.data;
  a.ckv_stride = ckv.stride;
  a.latent = latent.data;
  a.latent_stride = latent.stride;
  a.norm_w = norm_w.data;
  a.eps = eps;
  a.rows = int(ckv.rows);
  a.R = int(R);
  a.P = int(P);
  a.q = q.data;
  a.q_stride = q.stride;
  a.head_stride = head_stride;
  a.heads = int(heads);
  a.q_off = int(q_off);
  a.cos_t = t.cos;
  a.sin_t = t.sin;
  a.max_positions = int(t.max_positions);
  a.interleaved = t.interleaved;
  a.positions = b.positions;
  a.slots = b.slots;
  a.cache = kv.data;
  a.cache_f32 = kv.dtype == DType::F32;
  a.width = kv.width;
  // Decode: held for the absorb_q launch that follows (its tile kernel takes 128-thread prepare blocks).
  if (fast_.mla_fuse && fast_.absorb && !force_generic_ && a.rows <= 64 && mla_prepare_threads(a.R) == 128) {
    pending_prep_ = a;
    prep_pending_ = true;
    return;
  }
  launch_mla_prepare(a, stream_);
}

void CudaBackend::mla_attention(Act q_lat, Act q_pe, const KVLayerView& kv, int64_t heads, float scale,
                                const BatchMeta& b, Act out_lat) {
  flush_norm();
  const int64_t R = q_lat.cols, P = q_pe.cols;
  if (!kv_ok(kv) || kv.width != R + P || out_lat.cols != R || q_lat.rows != q_pe.rows ||
      q_lat.rows != b.n_tokens * heads)
    fail("mla_attention: q_lat [", q_lat.rows, ", ", R, "], q_pe [", q_pe.rows, ", ", P, "], cache width ", kv.width,
         ", ", heads, " heads, ", b.n_tokens, " tokens");
  if (mla_attention_blas(q_lat, q_pe, kv, heads, scale, b, out_lat)) return;
  if (R > 512 || R + P > 1024) fail("mla_attention: latent width ", R, " > 512 is not supported by the CUDA kernel");
  AttnArgs a;
  a.q1 = q_lat.data;
  a.q_row_stride = q_lat.stride * heads;
  a.q_head_stride = q_lat.stride;
  a.q2 = q_pe.data;
  a.q2_row_stride = q_pe.stride * heads;
  a.q2_head_stride = q_pe.stride;
  a.d1 = int(R);
  a.d2 = int(P);
  a.dv = int(R);
  a.heads = int(heads);
  a.kv_heads = 1;
  set_cache(a, kv, b, scale);
  a.out = out_lat.data;
  a.out_row_stride = out_lat.stride * heads;
  a.out_head_stride = out_lat.stride;
  // Decode of one token, a block per head: held, so that the value projection can join the launch (mla_expand_v).
  if (fast_.attn_expand && fast_.raw_gemv && split_ && b.n_tokens == 1 && attention_blocks(a) == a.heads) {
    pending_attn_ = a;
    attn_pending_ = true;
    return;
  }
  run_attention(a);
}

// Attention of a step: on tensor cores for long eager batches (prefill), split over the KV length for small ones.
void CudaBackend::run_attention(const AttnArgs& a) {
  AttnTc tc;
  if (fast_.flash && !capturing_ && a.n_tokens > kAttnSplitMaxTokens && attention_tc_plan(a, tc, smem_optin_)) {
    auto* buf = static_cast<int32_t*>(ws(attn_plan_, size_t(2 * a.n_tokens + 1) * 4, "attention blocks"));
    tc.blocks = buf;
    tc.count = buf + 2 * a.n_tokens;
    launch_attention_tc(a, tc, stream_);
    return;
  }
  launch_attention(a, stream_, attention_split(a), fast_.attn_stage);
}

// Splits of the KV length for a launch with few (token, head group) blocks (decode): enough blocks for ~4 per SM,
// at most 16. At run time a split takes at least attn_min_keys_ keys (16; MMFP4_CUDA_ATTN_MINKEYS, measurement
// only), so short contexts use the first splits only and the rest return at once. The count depends on the step's
// tokens and heads only, not on the block tables' width, so a graph (recorded at the cache's capacity) and the
// eager step split a context the same way: the same sums in the same order.
AttnSplit CudaBackend::attention_split(const AttnArgs& a) {
  AttnSplit sp;
  if (!fast_.attn || a.n_tokens > kAttnSplitMaxTokens) return sp;
  const int64_t want = std::min<int64_t>(ceil_div(4 * sms_, attention_blocks(a)), kAttnMaxSplits);
  if (want <= 1) return sp;
  const int64_t rows = int64_t(a.n_tokens) * a.heads * want;
  auto* buf = static_cast<float*>(ws(attn_part_, size_t(rows * (a.dv + 2) * 4), "attention splits"));
  sp.splits = int(want);
  sp.min_keys = attn_min_keys_;
  sp.o = buf;
  sp.ml = buf + rows * a.dv;
  sp.counters = static_cast<int32_t*>(ws(attn_ctr_, size_t(a.n_tokens) * a.heads * 4, "attention split counters"));
  return sp;
}

void CudaBackend::mla_absorb_q(Act q_nope, const LinearWeight& kv_b_in, int64_t heads, int64_t nope, int64_t v,
                               Act q_lat) {
  const bool prep = prep_pending_;  // a held mla_prepare (mla_fuse): its rows join the tile kernel's launch
  prep_pending_ = false;
  flush_norm();
  const auto& w = static_cast<const CudaLinear&>(kv_b_in);
  const int64_t R = w.k_stored;
  if (q_lat.cols != R || q_nope.cols != nope || q_lat.rows != q_nope.rows || q_nope.rows % heads != 0 ||
      w.n != heads * (nope + v))
    fail("mla_absorb_q ", w.name, " [", w.n, ", ", w.k, "]: q_nope [", q_nope.rows, ", ", q_nope.cols, "], q_lat [",
         q_lat.rows, ", ", q_lat.cols, "], ", heads, " heads, nope ", nope, ", v ", v);
  const bool tiles = fast_.absorb && !force_generic_ && w.gw.kind == WKind::Fp4 && w.mma_ok && w.gw.row0 == 0;
  const bool join = prep && tiles && pending_prep_.rows == q_nope.rows / heads && q_nope.rows / heads < kBlasMinRows;
  if (prep && !join) launch_mla_prepare(pending_prep_, stream_);  // first, as it was issued
  if (join) ++mla_fused_;
  if (kv_b_heads_blas(q_nope, w, heads, nope, v, false, q_lat, "mla_absorb_q")) return;
  if (tiles)
    launch_mla_absorb_q_tiles(q_nope.data, q_nope.stride, int(q_nope.rows), int(heads), int(nope), int(v), w.gw,
                              int(R), q_lat.data, q_lat.stride, stream_, join ? &pending_prep_ : nullptr);
  else
    launch_mla_absorb_q(q_nope.data, q_nope.stride, int(q_nope.rows), int(heads), int(nope), int(v), w.gw, int(R),
                        q_lat.data, q_lat.stride, stream_);
}

void CudaBackend::mla_expand_v(Act o_lat, const LinearWeight& kv_b_in, int64_t heads, int64_t nope, int64_t v,
                               Act out) {
  const auto& w = static_cast<const CudaLinear&>(kv_b_in);
  const int64_t R = w.k_stored, rows = o_lat.rows;
  if (o_lat.cols != R || out.cols != v || out.rows != rows || rows % heads != 0 || w.n != heads * (nope + v)) {
    flush_norm();
    fail("mla_expand_v ", w.name, " [", w.n, ", ", w.k, "]: o_lat [", o_lat.rows, ", ", o_lat.cols, "], out [",
         out.rows, ", ", out.cols, "], ", heads, " heads");
  }
  // The held attention wrote o_lat (FastPaths::attn_expand): the projection of each head runs in the block that
  // finishes the head. o_lat is still written (a view of the same rows, per head).
  if (attn_pending_ && o_lat.data == pending_attn_.out && o_lat.stride == pending_attn_.out_head_stride &&
      heads == pending_attn_.heads && rows == int64_t(pending_attn_.n_tokens) * heads && w.mma_ok && !force_generic_ &&
      w.gw.row0 == 0 && nope % 16 == 0 && (nope + v) % 16 == 0 && !may_overlap(out, o_lat)) {
    const GemmWeight sub = w_uv_heads(w.gw, nope, v);
    if (attention_expand_ok(pending_attn_, sub)) {
      AttnArgs a = pending_attn_;
      attn_pending_ = false;
      a.ev_w = sub;
      a.ev_out = out.data;
      a.ev_row_stride = out.stride * heads;
      a.ev_head_stride = out.stride;
      run_attention(a);
      ++attn_expand_calls_;
      return;
    }
  }
  flush_norm();
  const int64_t T = rows / heads;
  if (kv_b_heads_blas(o_lat, w, heads, nope, v, true, out, "mla_expand_v")) return;
  // Per head: out[t, h] = W_UV_h o_lat[t, h], a linear layer on rows [h(nope+v) + nope, + v) of the stored weight
  // (rotated domain: o_lat is a combination of cached latents, which are rotated too). All heads in one launch
  // when the heads' row blocks sit on 16-row tiles (the tensor-core kernel's per-head mode), in chunks of 64 tokens.
  const bool tiles_ok = w.gw.kind != WKind::Fp4 || (nope % 16 == 0 && (nope + v) % 16 == 0);
  if (w.mma_ok && !force_generic_ && tiles_ok) {
    const GemmWeight sub = w_uv_heads(w.gw, nope, v);  // head h's W_UV is "expert" h
    const int kb32 = w.gw.k_chunks * 2;
    for (int64_t t0 = 0; t0 < T; t0 += 64) {
      const int tc = int(std::min<int64_t>(64, T - t0));
      const int mt = int(ceil_div(tc, 8));
      const int nt = mt <= 1 ? 1 : mt <= 2 ? 2 : mt <= 4 ? 4 : 8, tm = 8 * nt;
      const int tpad = int(round_up(tc, tm)), xb_rows = int(heads) * tpad;
      PrepArgs pa;
      pa.x = o_lat.data + t0 * heads * o_lat.stride;
      pa.x_stride = o_lat.stride;
      pa.k_valid = int(R);
      pa.hm_heads = int(heads);
      pa.hm_tokens = tc;
      pa.hm_tpad = tpad;
      pa.rows_pad = xb_rows;
      pa.kb32 = kb32;
      pa.f16 = w.gw.kind == WKind::F16;
      pa.xb = ws(xb_, size_t(xb_rows) * kb32 * 64, "activations (16-bit)");
      if (split_) pa.xb_lo = ws(xb_lo_, size_t(xb_rows) * kb32 * 64, "activations (16-bit, low halves)");
      GemmArgs a;
      a.w = sub;
      a.xb = pa.xb;
      a.xb_lo = pa.xb_lo;
      a.kb32 = kb32;
      a.m = tc;
      a.nt = nt;
      a.heads = int(heads);
      a.head_tokens = tc;
      a.head_tpad = tpad;
      a.grid_tiles = int(heads) * (tpad / tm);
      a.y = out.data + t0 * heads * out.stride;
      a.y_stride = out.stride * heads;
      a.y_head_stride = out.stride;
      launch_mma(a, tc, pa);
    }
    return;
  }
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t r0 = h * (nope + v) + nope;
    GemmCall c;
    c.w = &w;
    c.gw = rows_of(w.gw, r0, v);  // a tile view, or (off the 16-row tiles) row0 for the generic kernel
    c.x = o_lat.data + h * o_lat.stride;
    c.x_stride = o_lat.stride * heads;
    c.k_valid = int(R);
    c.m = int(T);
    c.y = out.data + h * out.stride;
    c.y_stride = out.stride * heads;
    c.what = "mla_expand_v";
    gemm(c);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Mixture of experts
// ---------------------------------------------------------------------------------------------------------------
void CudaBackend::check_route(Act logits, const RouterParams& p) const {
  if (logits.cols != p.n_experts || p.top_k <= 0 || p.top_k > p.n_experts || p.n_experts > 1024 ||
      (p.sigmoid && p.n_group > 0 && p.n_experts % p.n_group != 0) || p.topk_group > p.n_group)
    fail("moe_route: logits [", logits.rows, ", ", logits.cols, "], ", p.n_experts, " experts, top ", p.top_k,
         ", groups ", p.n_group, "/", p.topk_group, " (the CUDA router takes up to 1024 experts)");
}

// Router GEMM + routing (FastPaths::moe_router): with sigmoid routing and no expert groups, for a router of one row
// block (E <= 128) on the tensor-core GEMV with one token tile (decode up to 8 tokens), the block that stores the
// logits routes the rows (GemmArgs::route: the routing kernel's function, the same bits); one launch less per MoE
// layer.
// Everything else (and a GEMM launch that cannot take it) runs the linear and then moe_route.
void CudaBackend::moe_router(Act h, const LinearWeight& w, Act logits, const DeviceVector* bias, const RouterParams& p,
                             int32_t* ids, float* weights) {
  const bool fuse = fast_.moe_router && fast_.moe && p.sigmoid && p.n_group <= 1 && p.top_k <= 32 &&
                    p.n_experts <= kBlockRows && h.rows <= 8;
  routed_ids_ = ids, routed_shared_ = int(p.shared_id);
  if (!fuse) {
    linear(h, w, logits, false, false);
    moe_route(logits, bias, p, ids, weights);
    return;
  }
  check_route(logits, p);
  struct Clear {  // the request never outlives this call (an error in linear must not leave it to a later GEMV)
    RouteArgs& r;
    ~Clear() { r = RouteArgs{}; }
  } clear{route_req_};
  route_req_.ids = ids, route_req_.w = weights, route_req_.bias = bias ? bias->data : nullptr;
  route_req_.E = int(p.n_experts), route_req_.K = int(p.top_k), route_req_.shared = int(p.shared_id);
  route_req_.sigmoid = true, route_req_.norm = p.norm_topk_prob, route_req_.scaling = p.routed_scaling_factor;
  linear(h, w, logits, false, false);
  if (route_req_.ids) {  // the GEMM did not take it
    route_req_ = RouteArgs{};
    moe_route(logits, bias, p, ids, weights);
  } else {
    ++moe_router_fused_;
  }
}

void CudaBackend::moe_route(Act logits, const DeviceVector* bias, const RouterParams& p, int32_t* ids,
                            float* weights) {
  flush_norm();
  check_route(logits, p);
  routed_ids_ = ids, routed_shared_ = int(p.shared_id);
  if (fast_.moe && (!p.sigmoid || p.n_group <= 1) && p.top_k <= 32)
    launch_moe_route_warp(logits.data, logits.stride, int(logits.rows), int(p.n_experts), bias ? bias->data : nullptr,
                          p.sigmoid, int(p.top_k), p.norm_topk_prob, p.routed_scaling_factor, int(p.shared_id), ids,
                          weights, stream_);
  else
    launch_moe_route(logits.data, logits.stride, int(logits.rows), int(p.n_experts), bias ? bias->data : nullptr,
                     p.sigmoid, int(p.top_k), int(std::max<int64_t>(p.n_group, 1)), int(p.topk_group),
                     p.norm_topk_prob, p.routed_scaling_factor, int(p.shared_id), ids, weights, stream_);
}

// Measurement only (bench_cuda_decode --repeat measures whole ops): MMFP4_CUDA_REPEAT_MOE=plan,gate_up,down,combine
// issues the named stages of moe_experts twice, so that their cost inside a replayed step can be told apart. Repeating
// plan, gate_up or down leaves the results unchanged (each rewrites its own buffers); combine adds twice.
static int moe_repeat(const char* stage) {
  static const std::string spec =
      "," + env_list("MMFP4_CUDA_REPEAT_MOE", {"plan", "gate_up", "down", "combine"}) + ",";
  std::string key = ",";
  key += stage;
  key += ",";
  return spec.find(key) != std::string::npos ? 2 : 1;
}

void CudaBackend::moe_experts(Act x, const int32_t* ids, const float* weights, int64_t K, const ExpertWeights& ew_in,
                              Act out) {
  flush_norm();
  const auto& ew = static_cast<const CudaExperts&>(ew_in);
  const int64_t T = x.rows, H = ew.hidden, I = ew.inter, E = ew.n_experts;
  if (x.cols != H || out.cols != H || out.rows != T)
    fail("moe_experts: x [", x.rows, ", ", x.cols, "], out [", out.rows, ", ", out.cols, "], experts ", E, " x [", I,
         ", ", H, "]");
  if (T == 0) return;
  const int64_t n = T * K;
  // Token tiles: as many rows as a typical expert gets, so decode does not pay for 64-row tiles.
  const int64_t avg = ceil_div(n, E);
  int nt = avg <= 8 ? 1 : avg <= 16 ? 2 : avg <= 32 ? 4 : 8;
  // Many rows per expert (prefill): 64- or 128-row tiles on the tiled GEMM, when every expert weight takes it.
  const bool tiled = tiled_ok(ew.down) && (ew.stacked() ? tiled_ok(ew.gate_up) : tiled_ok(ew.gate) && tiled_ok(ew.up));
  // 128-row tiles only when experts average > 256 rows: an expert's last tile is partly empty, and at ~128 rows per
  // expert (2,048-token GLM prefill) 64-row tiles waste half as much (H100: MoE prefill 5,217 -> 5,515 tokens/s).
  if (tiled && avg > 16) nt = avg > 256 ? 16 : 8;
  const int tile_rows = 8 * nt, align = 8;
  const int64_t rows_pad = round_up(n + E * (align - 1), 8);
  // Each of the k <= min(E, n) experts with rows needs ceil(c / R) <= (c + R - 1) / R tiles of R rows, so there
  // are at most (n + k (R - 1)) / R in all (exact bound: decode's 5 pairs launch 5 tiles, not 6); the loose bound
  // ceil(n / R) + E without FastPaths::moe, and with MMFP4_CUDA_MOE_TILES=loose (measurement only).
  static const bool loose = env_choice("MMFP4_CUDA_MOE_TILES", {"exact", "loose"}).value_or("exact") == "loose";
  const int64_t k_max = std::min(E, n);
  const int64_t max_tiles = !fast_.moe ? ceil_div(n, tile_rows) + E
                            : loose     ? ceil_div(n, tile_rows) + k_max
                                        : (n + k_max * (tile_rows - 1)) / tile_rows;
  auto* sorted = static_cast<int32_t*>(ws(moe_sorted_, size_t(rows_pad * 4), "moe sorted rows"));
  auto* pos = static_cast<int32_t*>(ws(moe_pos_, size_t(n * 4), "moe positions"));
  auto* tiles = static_cast<int32_t*>(ws(moe_tiles_, size_t(max_tiles * 3 * 4), "moe tiles"));
  auto* count = static_cast<int32_t*>(ws(moe_count_, 4, "moe tile count"));
  // Decode of up to 4 tokens (FastPaths::moe_direct): each (token, slot) is its own one-row tile read straight from
  // ids (TileTable::direct) and the plan kernel (~9 us of a decode layer in the H100's replayed step) is not
  // launched. An expert two tokens share (the shared expert always) is read once per token, mostly from L2. On the
  // H200 (bench/results/cuda-ab-session24-5af6520.txt) batch 2 436 -> 487 tokens/s, 3 and 4 +3.5%; 8 tokens (graph
  // bucket of batch 5..8) 11-15% slower than the plan, so 4 (MMFP4_CUDA_MOE_DIRECT_TOKENS, measurement only).
  // Only where every product takes the staged tensor-core path made for it.
  const bool direct = fast_.moe_direct && fast_.moe && T <= moe_direct_tokens_ && nt == 1 && ew.stacked() &&
                      ew.gate_up.mma_ok && ew.down.mma_ok && !force_generic_ && ew.gate.hadamard_block == 0 &&
                      ew.down.hadamard_block == 0 && ew.gate_up.gw.row0 == 0;
  moe_direct_calls_ += direct;
  if (!direct)
    for (int r = moe_repeat("plan"); r > 0; --r)
      launch_moe_plan(ids, int(T), int(K), int(E), align, tile_rows, sorted, pos, tiles, count, int(max_tiles),
                      stream_);

  const int64_t Ip = ew.down.k_stored;  // the down projection's stored width (rotation padding included)
  auto* g = static_cast<float*>(ws(moe_g_, size_t(rows_pad * Ip * 4), "moe gate"));
  auto* u = static_cast<float*>(ws(moe_u_, size_t(rows_pad * Ip * 4), "moe up"));
  auto* d = static_cast<float*>(ws(moe_d_, size_t(rows_pad * H * 4), "moe down"));

  // gate/up on the expert-sorted rows of x (rotated once if the experts are).
  const float* xin = x.data;
  int64_t xs = x.stride;
  int kval = int(H);
  if (ew.gate.hadamard_block > 0) {
    auto* r = static_cast<float*>(ws(moe_rot_, size_t(std::max(T * ew.gate.k_stored, rows_pad * Ip) * 4),
                                     "moe rotated activations"));
    launch_rotate_pad(x.data, x.stride, int(T), int(H), int(ew.gate.k_stored), ew.gate.hadamard_block, r, stream_);
    xin = r;
    xs = ew.gate.k_stored;
    kval = int(ew.gate.k_stored);
  }
  GemmCall c;
  c.x = xin;
  c.x_stride = xs;
  c.k_valid = kval;
  c.m = int(rows_pad);
  c.row_map = sorted;
  c.row_div = int(K);
  c.tiles = TileTable{tiles, count};
  c.max_tiles = int(max_tiles);
  if (direct) {  // row i is slot i: token i / K
    c.m = int(n);
    c.row_map = nullptr;
    c.tiles = TileTable{ids, nullptr, true, int(E)};
    // The routing wrote its shared expert (if any) into the last slot: that slot's blocks can load before the wait.
    if (fast_.shared_early && ids == routed_ids_ && routed_shared_ >= 0) {
      c.tiles.known_slot = int(K - 1);
      c.tiles.known_expert = routed_shared_;
      ++shared_early_calls_;
    }
    c.max_tiles = int(n);
  }
  c.tile_rows = tile_rows;
  c.prefill = fast_.blas && T >= kBlasMinRows;
  c.y_stride = Ip;
  float* act = g;  // silu(gate) * up, [rows_pad, Ip]
  bool fused_silu = false;
  if (fast_.moe && ew.stacked()) {
    // gate and up as one GEMM over the stacked weight: [rows_pad, 2I] = [gate | up], then silu(gate) * up.
    const int64_t W2 = ew.gate_up.n;
    auto* gu = static_cast<float*>(ws(moe_g_, size_t(rows_pad * W2 * 4), "moe gate"));
    c.what = "moe gate+up";
    c.w = &ew.gate_up;
    c.gw = ew.gate_up.gw;
    c.y = gu;
    c.y_stride = W2;
    for (int r = moe_repeat("gate_up"); r > 0; --r) gemm(c);
    // down can read [gate | up] and apply silu(gate) * up while converting its activations (no silu launch).
    fused_silu = ew.down.hadamard_block == 0 && ew.down.mma_ok && !force_generic_;
    if (fused_silu) {
      c.x = gu;
      c.x_stride = W2;
      c.k_valid = int(I);
      c.glu_off = int(I);
    } else {
      launch_silu_mul(gu, W2, gu + I, W2, u, Ip, int(rows_pad), int(I), stream_);
      act = u;
    }
  } else {
    c.what = "moe gate";
    c.w = &ew.gate;
    c.gw = ew.gate.gw;
    c.y = g;
    gemm(c);
    c.what = "moe up";
    c.w = &ew.up;
    c.gw = ew.up.gw;
    c.y = u;
    gemm(c);
    launch_silu_mul(g, Ip, u, Ip, g, Ip, int(rows_pad), int(I), stream_);
  }

  // down on the sorted rows of silu(g) * u (rows are already in expert order: the map only marks padding).
  if (!fused_silu) {
    const float* din = act;
    int dval = int(I);
    if (ew.down.hadamard_block > 0) {
      auto* r = static_cast<float*>(ws(moe_rot_, size_t(std::max(T * ew.gate.k_stored, rows_pad * Ip) * 4),
                                       "moe rotated activations"));
      launch_rotate_pad(act, Ip, int(rows_pad), int(I), int(Ip), ew.down.hadamard_block, r, stream_);
      din = r;
      dval = int(Ip);
    }
    c.x = din;
    c.x_stride = Ip;
    c.k_valid = dval;
  }
  // One token (direct) with the fused silu input: its down projection and combine as one launch (FastPaths::moe_sum;
  // gemv_token.cu): a block per 16 output rows over every slot's K, the slots added into out there. The ids come
  // from the routing, two launches back (the gate/up GEMM is the launch in between), as that kernel needs.
  if (direct && T == 1 && fused_silu && fast_.moe_sum && ew.down.gw.row0 == 0 &&
      token_gemv_ok(ew.down.gw, int(K), int(I), ew.gate_up.n)) {
    TokenGemvArgs a;
    a.w = ew.down.gw;
    a.ids = ids;
    a.wts = weights;
    a.slots = int(K);
    a.n_experts = int(E);
    a.gu = c.x;
    a.gu_stride = c.x_stride;
    a.inter = int(I);
    a.out = out.data;
    for (int r = moe_repeat("down"); r > 0; --r) launch_token_gemv(a, stream_);
    ++moe_sum_calls_;
    return;
  }
  c.row_div = 1;
  c.map_is_mask = !direct;
  if (direct) c.row_map = nullptr;
  c.y_stride = H;
  c.what = fused_silu ? "moe down (silu fused)" : "moe down";
  c.w = &ew.down;
  c.gw = ew.down.gw;
  c.y = d;
  for (int r = moe_repeat("down"); r > 0; --r) gemm(c);
  for (int r = moe_repeat("combine"); r > 0; --r)
    launch_moe_combine(d, H, direct ? nullptr : pos, weights, int(T), int(K), int(H), out.data, out.stride, stream_);
}

// ---------------------------------------------------------------------------------------------------------------
// Graphs
// ---------------------------------------------------------------------------------------------------------------
void CudaBackend::begin_graph() {
  flush_norm();
  if (capturing_) fail("begin_graph: a step graph is already being recorded");
  MMFP4_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin graph capture");
  capturing_ = capture_in_progress() = true;
}

std::unique_ptr<StepGraph> CudaBackend::end_graph() {
  flush_norm();
  if (!capturing_) fail("end_graph: no step graph is being recorded");
  capturing_ = capture_in_progress() = false;
  auto g = std::make_unique<CudaStepGraph>();
  MMFP4_CUDA_CHECK(cudaStreamEndCapture(stream_, &g->graph), "end graph capture (an op failed while recording)");
  MMFP4_CUDA_CHECK(cudaGraphInstantiate(&g->exec, g->graph, 0), "instantiate step graph");
  graphs_made_ = true;
  return g;
}

void CudaBackend::replay_graph(const StepGraph& g_in) {
  flush_norm();
  const auto& g = static_cast<const CudaStepGraph&>(g_in);
  MMFP4_CUDA_CHECK(cudaGraphLaunch(g.exec, stream_), "replay step graph");
}

}  // namespace cuda
}  // namespace mmfp4
