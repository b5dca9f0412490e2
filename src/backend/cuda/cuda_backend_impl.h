// The CUDA backend: device memory, load-time weight repacking, the op dispatch (which kernel for which shape:
// tensor-core kernel when eligible, generic kernel otherwise), per-step workspace and CUDA graphs.
// The kernels live one op per .cu file (kernels.h lists their launchers).
//
// Streams and ordering: every op is queued on one non-blocking stream; upload/download/sync wait for it. The
// activation arena, KV cache and weights are plain cudaMalloc allocations made at load.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <set>
#include <tuple>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cublas_lib.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace mmfp4::cuda {

// A linear weight on the GPU: MMFP4 in the tile layout of repack.h, or dense rows as stored.
struct CudaLinear final : LinearWeight {
  ~CudaLinear() override;
  GemmWeight gw;              // device view (data, scales, tile geometry)
  int64_t k_stored = 0;       // stored columns (rotated MMFP4: k padded to the Hadamard block)
  bool mma_ok = false;        // the tensor-core kernel takes it (MMFP4 with group % 32 == 0, bf16/f16 dense)
  std::vector<void*> owned;   // cudaMalloc'd blocks
  uint64_t uid = 0;           // unique per upload in the process (never reused; 0: none), names cached derived data
};

// The routed experts of one layer, stacked: gate/up [E][I, H], down [E][H, I]. With the fast MoE path at upload
// (and I a multiple of 16), gate and up are one weight per expert, gate_up [E][2I, H] (gate rows then up rows), so
// one grouped GEMM computes both; `gate` and `up` are then row-slice views of it (no memory of their own).
struct CudaExperts final : ExpertWeights {
  CudaLinear gate, up, down;
  CudaLinear gate_up;   // stacked, or empty (gate_up.gw.data == nullptr)
  bool stacked() const { return gate_up.gw.data != nullptr; }
};

// The speed paths added after the verified kernels of commit e568e9c (docs/cuda.md, "Switches"). Each is used only
// where its eligibility test passes, and each can be turned off (environment, read when the backend is made;
// MMFP4_CUDA_FAST=0 turns all off), which gives back the earlier kernels. The initialisers below are the defaults:
// turning a path off by default is a one-word change here.
struct FastPaths {
  bool absorb = true;  // MMFP4_CUDA_FAST_ABSORB: mla_absorb_q from 16-byte weight fragments, warps split the rows
  bool attn = true;    // MMFP4_CUDA_FAST_ATTN: attention split over the KV length when few (token, head) blocks
  bool moe = true;     // MMFP4_CUDA_FAST_MOE: tight tile bound (decode splits K), gate+up as one GEMM (at upload)
  bool prep = true;    // MMFP4_CUDA_FAST_PREP: small-M linears convert fp32 activations inside the GEMM (no prepare)
  bool gemm = true;    // MMFP4_CUDA_FAST_GEMM: MMFP4 linears with more than 16 rows on the tiled GEMM (gemm_tiled.cu)
  bool flash = true;   // MMFP4_CUDA_FAST_FLASH: attention of batches over 64 tokens on tensor cores (attention_tc.cu)
  bool dequant = true; // MMFP4_CUDA_FAST_DEQUANT: MMFP4 tiles in layout 2 (repack.h; cheaper decode), at upload
  bool pdl = true;     // MMFP4_CUDA_FAST_PDL
  bool norm = true;    // MMFP4_CUDA_FAST_NORM: an out-of-place rmsnorm feeding the next (staged) linear runs inside it
  bool norm_blas = true;  // MMFP4_CUDA_FAST_NORMBLAS: a prefill rmsnorm feeding a cuBLAS linear writes its bf16 input
  bool mla_prep = true;  // MMFP4_CUDA_FAST_MLAPREP: MLA's latent norm, ropes and cache store in one launch
  bool attn_stage = true;  // MMFP4_CUDA_FAST_ATTNSTAGE: decode attention's key/value tiles via shared memory (attention.cu)
  bool raw_gemv = true;  // MMFP4_CUDA_FAST_RAWGEMV: the decode GEMV's raw loop (gemv_fp4.cu, gemm_mma_raw_ok)
  bool blas = true;    // MMFP4_CUDA_FAST_BLAS: products of >= 128 rows (prefill) as bf16 GEMMs on cuBLAS (cuda_backend_blas.cpp)
  bool moe_router = true;  // MMFP4_CUDA_FAST_MOEROUTER: sigmoid routing in the router GEMM's last block (one row block)
  bool moe_direct = true;  // MMFP4_CUDA_FAST_MOEDIRECT: a one-token MoE step runs each slot as its own tile (no plan)
  bool moe_sum = true;     // MMFP4_CUDA_FAST_MOESUM: a direct step's down projection and combine in one launch (gemv_token.cu)
  bool gemv_one = true;    // MMFP4_CUDA_FAST_GEMVONE: one-token linears of <= SMs tiles, a 16-warp block per tile (gemv_token.cu)
  bool token_norm = true;  // MMFP4_CUDA_FAST_TOKENNORM: the same for a one-token linear after a norm, computed while staging
  bool attn_expand = true;  // MMFP4_CUDA_FAST_ATTNEXPAND: decode's mla_expand_v runs in the attention's blocks (attention.cu)
  bool token_router = true;  // MMFP4_CUDA_FAST_TOKENROUTER: the router of one token as one such block, routing included
  bool mla_fuse = true;    // MMFP4_CUDA_FAST_MLAFUSE: decode's mla_prepare runs as extra blocks of the absorb_q launch
  bool gemv_wide = true;   // MMFP4_CUDA_FAST_GEMVWIDE: one-wave decode GEMVs with registers for 2 blocks per SM, not 3
  bool gemv_kwarps = true;  // MMFP4_CUDA_FAST_GEMVKWARPS: decode GEMVs split K across a block's warps (GemmArgs::kslices)
  bool gemv_pair = true;   // MMFP4_CUDA_FAST_GEMVPAIR: decode GEMVs of <= 4 token rows take hi and lo in one mma (GemmArgs::pair)
  bool wgmma = true;       // MMFP4_CUDA_FAST_WGMMA: tiled-GEMM tiles of 32/64 tokens on wgmma (gemm_tiled_wg.cu)
  bool dense_tiles = true;  // MMFP4_CUDA_FAST_DENSETILES: 16-bit dense token tiles go token tile first (16 rows to M 48)
  bool whole_k = true;  // MMFP4_CUDA_FAST_WHOLEK: 5..16-row MMFP4 linears of >= 8 tiles per SM, a block per SM (gemv_whole_k.cu)
  bool whole_k_pair = true;  // MMFP4_CUDA_FAST_WHOLEKPAIR: the same launch for 1..4 rows, staged in the block and paired
  bool stage_batch = true;  // MMFP4_CUDA_FAST_STAGEBATCH: its staged rows loaded by all its threads, in batches
  bool dense_persist = true;  // MMFP4_CUDA_FAST_DENSEPERSIST: one token tile of a 16-bit weight on persistent blocks
  bool shared_early = true;  // MMFP4_CUDA_FAST_SHAREDEARLY: one token's shared expert loaded before the routing ends
  bool moe_stream = true;  // MMFP4_CUDA_FAST_MOESTREAM: a plan's MoE token tiles on persistent blocks fed by the copy engine
  bool prefill_bf16 = false;  // MMFP4_CUDA_PREFILL_BF16=1: tiled GEMMs of >= 128 rows take one bf16 activation (no lo)
};

struct CudaStepGraph final : StepGraph {
  ~CudaStepGraph() override;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};

// A split of K: splits of cps 64-column chunks each (CudaBackend::choose_splits).
struct SplitK {
  int splits = 1, cps = 0;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  std::string name() const override { return name_; }
  bool is_cpu() const override { return false; }
  void* alloc(size_t bytes, const std::string& what) override;
  void release(void* p) override;
  void upload(void* dst, const void* src, size_t bytes) override;
  void download(void* dst, const void* src, size_t bytes) override;
  size_t free_memory() const override;
  DType kv_dtype() const override { return kv_dtype_; }

  std::unique_ptr<LinearWeight> upload_linear(const HostWeight& w) override;
  std::unique_ptr<ExpertWeights> upload_experts(const std::vector<HostWeight>& gate, const std::vector<HostWeight>& up,
                                                const std::vector<HostWeight>& down) override;

  void embed(const LinearWeight& table, const BatchMeta& b, Act out) override;
  void rmsnorm(Act x, const DeviceVector& w, float eps, Act out) override;
  void linear(Act x, const LinearWeight& w, Act out, bool accumulate, bool input_rotated) override;
  void hadamard(Act x, int block) override;
  void rope(Act x, int64_t heads, int64_t head_stride, int64_t off, const RopeTable& table,
            const BatchMeta& b) override;
  void silu_mul(Act gate, Act up, Act out) override;
  void add(Act x, Act y) override;
  void add_bias(Act x, const DeviceVector& bias) override;
  void gather_rows(Act x, const int32_t* rows, int64_t n, Act out) override;
  void kv_store(const KVLayerView& kv, Act k, Act v, const BatchMeta& b) override;
  void attention(Act q, const KVLayerView& kv, int64_t heads, int64_t kv_heads, int64_t head_dim, float scale,
                 const BatchMeta& b, Act out) override;
  void mla_store(const KVLayerView& kv, Act latent, Act kpe, const BatchMeta& b) override;
  void mla_prepare(Act ckv, const DeviceVector& norm_w, float eps, Act latent, Act q, int64_t heads,
                   int64_t head_stride, int64_t q_off, int had, const RopeTable& table, const KVLayerView& kv,
                   const BatchMeta& b) override;
  void mla_attention(Act q_lat, Act q_pe, const KVLayerView& kv, int64_t heads, float scale, const BatchMeta& b,
                     Act out_lat) override;
  void mla_absorb_q(Act q_nope, const LinearWeight& kv_b, int64_t heads, int64_t nope, int64_t v,
                    Act q_lat) override;
  void mla_expand_v(Act o_lat, const LinearWeight& kv_b, int64_t heads, int64_t nope, int64_t v, Act out) override;
  void moe_route(Act logits, const DeviceVector* bias, const RouterParams& p, int32_t* ids, float* weights) override;
  void moe_router(Act h, const LinearWeight& w, Act logits, const DeviceVector* bias, const RouterParams& p,
                  int32_t* ids, float* weights) override;
  void moe_experts(Act x, const int32_t* ids, const float* weights, int64_t top_k, const ExpertWeights& ew,
                   Act out) override;
  void sync() override;

  void reserve_workspace(const WorkspacePlan& plan) override;
  void argmax_rows(Act x, int32_t* ids) override;
  double device_read_gbs(size_t bytes) override;
  bool supports_graphs() const override { return true; }
  void begin_graph() override;
  std::unique_ptr<StepGraph> end_graph() override;
  void replay_graph(const StepGraph& g) override;

  cudaStream_t stream() const { return stream_; }
  int sm_count() const { return sms_; }
  // Test hook: force the generic (float32 FMA) linear kernel for every weight.
  void set_force_generic(bool on) { force_generic_ = on; }
  // Test hook: at most this many splits of K in the skinny tensor-core linears (0: no cap), so that small weights
  // reach the wide-K-split cases of large ones (staged activations above 48 KB, the split that makes them fit).
  void set_max_splits(int n) { max_splits_ = n; }
  // Batched decode on wgmma (gemm_tiled_wg.cu): 33..64 rows as two 32-token tiles for weights of at most this many
  // device bytes (half the H100's 50 MB L2: the second tile's blocks find the weight there), else one 64-token tile.
  static constexpr int64_t kWgTwoTileBytes = 25 << 20;
  // Test hook: that bound (wg_two_tile_bytes_).
  void set_wgmma_two_tile_bytes(int64_t b) { wg_two_tile_bytes_ = b; }
  // Activations enter the tensor cores as hi + lo 16-bit halves (two mma per step, ~float32 accuracy; default) or
  // as one 16-bit value (faster for large compute-bound products, 2^-9 relative rounding).
  void set_split_activations(bool on) { split_ = on; }
  // Element type of KV caches made after this call: F32 (default) or BF16 (half the memory and attention traffic;
  // its rounding can flip near-tied MoE routing decisions, see docs/cuda.md).
  void set_kv_dtype(DType t) {
    if (t != DType::F32 && t != DType::BF16) fail("CUDA KV cache: F32 or BF16, not ", dtype_name(t));
    kv_dtype_ = t;
  }
  bool split_activations() const { return split_; }
  // Test hooks: the speed paths (FastPaths) on or off. `moe` also decides, at upload, whether gate and up are stacked.
  FastPaths& fast() { return fast_; }
  // Test hook: MoE steps that ran as direct one-row tiles without the plan (FastPaths::moe_direct).
  int64_t moe_direct_calls() const { return moe_direct_calls_; }
  // The most tokens a MoE step takes the direct tiles for (MMFP4_CUDA_MOE_DIRECT_TOKENS; measurement).
  int moe_direct_tokens() const { return moe_direct_tokens_; }
  // The most rows a linear takes the one-token kernel for (gemv_token.cu; MMFP4_CUDA_TOKEN_GEMV_TOKENS) and a setter.
  int token_gemv_tokens() const { return token_gemv_tokens_; }
  void set_token_gemv_tokens(int n) { token_gemv_tokens_ = n; }
  void set_token_gemv_uses(bool plain, bool norm, bool router) {
    token_uses_plain_ = plain, token_uses_norm_ = norm, token_uses_router_ = router;
  }
  int64_t shared_early_calls() const { return shared_early_calls_; }
  int64_t dense_persist_launches() const { return dense_persist_launches_; }
  // Test hook: direct MoE steps whose down projection and combine ran as one launch (FastPaths::moe_sum).
  int64_t moe_sum_calls() const { return moe_sum_calls_; }
  // Test hook: one-token linears that ran a 16-warp block per tile over the whole K (FastPaths::gemv_one).
  int64_t gemv_one_launches() const { return gemv_one_launches_; }
  // Test hooks: of those, the launches that computed the pending norm (FastPaths::token_norm) and that routed
  // (FastPaths::token_router).
  int64_t token_norm_launches() const { return token_norm_launches_; }
  // Test hook: MLA value projections that ran inside the attention's launch (FastPaths::attn_expand).
  int64_t attn_expand_calls() const { return attn_expand_calls_; }
  int64_t token_router_launches() const { return token_router_launches_; }
  // Test hook: routers whose routing ran in the GEMM's epilogue (FastPaths::moe_router).
  int64_t moe_router_fused_calls() const { return moe_router_fused_; }
  // Test hook: mla_prepare calls that ran inside the next absorb_q launch (FastPaths::mla_fuse).
  int64_t mla_fused_calls() const { return mla_fused_; }
  // Test hook: decode GEMVs launched with registers for 2 blocks per SM (FastPaths::gemv_wide, GemmArgs::wide).
  int64_t gemv_wide_launches() const { return gemv_wide_launches_; }
  // Test hook: raw decode GEMVs launched with paired hi/lo columns (FastPaths::gemv_pair, GemmArgs::pair).
  int64_t gemv_pair_launches() const { return gemv_pair_launches_; }
  // Test hook: launches with K split across a block's warps (FastPaths::gemv_kwarps, GemmArgs::kslices).
  int64_t gemv_kwarps_launches() const { return gemv_kwarps_launches_; }
  // Test hook: launches of 16-bit dense weights' token tiles, token tile first (FastPaths::dense_tiles).
  int64_t dense_tile_launches() const { return dense_tile_launches_; }
  // Test hooks of the whole-K launch (FastPaths::whole_k): its launches, and the SM count its choice assumes (0: the
  // device's), so that small weights can take it in tests.
  int64_t whole_k_launches() const { return whole_k_launches_; }
  bool whole_k_available() const { return bulk_copy_ok_; }
  void set_whole_k_sms(int n) { whole_k_sms_ = n; }
  // Test hooks of the streamed MoE GEMVs (FastPaths::moe_stream): their launches, and the blocks of each (0: one per
  // SM), so that small experts spread over several blocks' ranges in tests.
  int64_t moe_stream_launches() const { return moe_stream_launches_; }
  void set_moe_stream_blocks(int n) { moe_stream_blocks_ = n; }
  // Test hook: tiled GEMMs launched on wgmma (FastPaths::wgmma), and whether the device runs wgmma at all.
  int64_t wgmma_launches() const { return wgmma_launches_; }
  bool wgmma_ok() const { return wgmma_ok_; }
  // Test hooks of the cuBLAS prefill path: whether cuBLAS can be used (opens it), and the products it has run.
  bool cublas_available() { return blas() != nullptr; }
  int64_t cublas_calls() const { return blas_ ? blas_->calls() : 0; }
  const std::string& cublas_why() const { return blas_why_; }  // why cublas_available() is false
  // Test hook: rmsnorms that wrote the 16-bit input of the cuBLAS linear after them (FastPaths::norm_blas).
  int64_t norm_blas_fused_calls() const { return norm_blas_fused_; }
  // The product of a linear whose input is already 16-bit (bf16; f16 for F16 weights), xb [m, ld] with ld >= the
  // stored width rounded up to 8 and zero past the input's columns: what gemm_blas runs after a norm that wrote its
  // input (FastPaths::norm_blas). For the linear benchmark, which times it against cuBLAS BF16 on the same operands;
  // false where the cuBLAS path does not take this weight or size.
  bool linear_16bit(const uint16_t* xb, int64_t ld, int64_t m, const LinearWeight& w, Act out, bool accumulate);

 private:
  // One named, growable device buffer of the per-step workspace. Growing is refused while a graph is recorded.
  struct Buffer {
    void* p = nullptr;
    size_t bytes = 0;
  };
  void* ws(Buffer& b, size_t bytes, const char* what);
  void fill_linear(CudaLinear& out, const HostWeight& w, const std::vector<const HostWeight*>& stack,
                   const std::vector<const HostWeight*>& second = {});

  // y (+)= x W^T for `m` rows (x row i = row_map[i] / row_div when mapped), the dispatch of every linear product.
  struct GemmCall {
    const CudaLinear* w = nullptr;
    GemmWeight gw;             // possibly a row slice of w->gw
    const float* x = nullptr;
    int64_t x_stride = 0;
    int k_valid = 0;
    int m = 0;
    const int32_t* row_map = nullptr;
    int row_div = 1;
    bool map_is_mask = false;  // row_map only marks padding rows (negative), rows map to themselves
    int glu_off = 0;           // the input is [gate | up]: x[k] = silu(gate[k]) * up[k] (PrepArgs::glu_off)
    TileTable tiles;
    int max_tiles = 0;
    int tile_rows = 0;         // MoE: rows per token tile (8 * nt)
    float* y = nullptr;
    int64_t y_stride = 0;
    bool accumulate = false;
    bool fuse_norm = false;    // the input is the pending rmsnorm's output: compute it in the GEMM if staged
    bool prefill = false;      // MoE of a prefill-sized step (FastPaths::blas): tiled GEMMs take one bf16 activation
    const char* what = "linear";
  };
  // A deferred rmsnorm (FastPaths::norm): launched by flush_norm() at the start of every other op, or computed inside
  // the next linear if that linear reads exactly its output through the staged path.
  struct PendingNorm {
    bool on = false;
    Act x, out;
    const float* w = nullptr;
    float eps = 0.0f;
  };
  PendingNorm pending_;
  void flush_norm();
  // A deferred mla_prepare (FastPaths::mla_fuse): run by the next mla_absorb_q's launch, or launched by flush_prep()
  // (called by flush_norm, that is at the start of every other op, and by linear).
  MlaPrepArgs pending_prep_;
  bool prep_pending_ = false;
  // A held decode MLA attention (FastPaths::attn_expand): launched by the next mla_expand_v with the value projection
  // in its blocks, or as issued by flush_prep().
  AttnArgs pending_attn_;
  bool attn_pending_ = false;
  void flush_prep();
  void gemm(const GemmCall& c);
  void launch_mma(GemmArgs& a, int rows, const PrepArgs& pa, bool fuse_norm = false);
  void take_norm(GemmArgs& a);
  bool probe_pdl();
  AttnSplit attention_split(const AttnArgs& a);
  void run_attention(const AttnArgs& a);
  bool tiled_ok(const CudaLinear& w) const;
  void launch_tiled(GemmArgs& a, const PrepArgs& pa);
  int best_splits(int row_blocks, int tiles, int k_chunks, int tm, int64_t npad, int rows, WKind kind,
                  int blocks_per_sm) const;
  bool splits_fit(int tiles, int splits, int tm, int64_t npad, int row_blocks) const;
  SplitK choose_splits(int row_blocks, int tiles, int k_chunks, int tm, int rows, WKind kind, int blocks_per_sm,
                       int align, int stage_rows, bool stage_split) const;

  // Prefill on cuBLAS (cuda_backend_blas.cpp, FastPaths::blas): each returns false where it does not apply, and the
  // caller then runs the tile kernels.
  static constexpr int64_t kBlasMinRows = 128;                 // rows (tokens) of a product that goes to cuBLAS
  static constexpr int64_t kBlasWorkspaceBytes = 32 << 20;     // cuBLAS's own workspace (it never allocates)
  static constexpr int64_t kDequantCapBytes = 64 << 20;        // a dequantized bf16 weight slice
  static constexpr int64_t kAttnScoreCapBytes = 384LL << 20;   // float32 scores of one chunk of queries
  static constexpr int64_t kBlasAttnMaxKeys = 8192;            // longer contexts take the flash kernel
  static constexpr int64_t kBlasAttnMinTokens = 64;            // every sequence of the step has at least this many
  Cublas* blas();
  bool blas_ok(int64_t rows);
  bool blas_linear_ok(const GemmWeight& gw, const CudaLinear& w, int64_t rows);
  void* ws_try(Buffer& b, size_t bytes, const char* what);
  bool gemm_blas(const GemmCall& c);
  void blas_linear_products(const GemmWeight& gw, const uint16_t* xb, int64_t ldx, int m, float* y, int64_t y_stride,
                            bool accumulate, const char* what);
  const void* kv_b_rows(const CudaLinear& w, int64_t* ld, BlasType* type);
  int64_t slice_rows(WKind kind, int64_t n, int64_t kpad) const;
  uint64_t wdq_uid_ = 0;  // the weight whose bf16 rows wdq_ holds whole (kv_b, for absorb then expand), or 0
  bool kv_b_heads_blas(Act x, const CudaLinear& w, int64_t heads, int64_t nope, int64_t v, bool expand, Act out,
                       const char* what);
  bool mla_attention_blas(Act q_lat, Act q_pe, const KVLayerView& kv, int64_t heads, float scale, const BatchMeta& b,
                          Act out_lat);
  void warm_blas(const WorkspacePlan& plan);
  std::unique_ptr<Cublas> blas_;
  bool blas_tried_ = false;
  struct LinearShape {  // a plain linear the cuBLAS path may take (warm_blas): kind, rows, columns as read
    WKind kind;
    int64_t n, kpad;
    bool operator<(const LinearShape& o) const {
      return std::tie(kind, n, kpad) < std::tie(o.kind, o.n, o.kpad);
    }
  };
  std::set<LinearShape> linear_shapes_;
  std::string blas_why_;

  int device_ = 0;
  int sms_ = 0;
  size_t smem_optin_ = 0;     // shared memory a block may opt in to (227 KB on sm_90, 163 KB on sm_80)
  std::string name_;
  cudaStream_t stream_ = nullptr;
  bool capturing_ = false;
  bool graphs_made_ = false;  // recorded graphs hold workspace pointers: from then on the workspace may not move
  bool force_generic_ = false;
  bool split_ = true;                 // MMFP4_CUDA_GEMM=bf16 turns it off
  int max_splits_ = 0;                // set_max_splits, MMFP4_CUDA_MAX_SPLITS
  int moe_direct_tokens_ = 4;         // MoE steps of at most this many tokens take the direct tiles (measurement knob)
  int token_gemv_tokens_ = 4;         // linears of at most this many rows may take gemv_token.cu (measurement knob)
  // Which uses of gemv_token.cu take 2..4 tokens (MMFP4_CUDA_TOKEN_GEMV_USES, measurement). On the H200 (bench/
  // results/cuda-ab-session24-5af6520.txt, part 5) plain + norm: decode batch 2 +2.3%, 3 and 4 +0.3%; the router's
  // one block for 3..4 tokens measured 1% slower than the router GEMV's 16 K splits, so it takes one token only.
  bool token_uses_plain_ = true, token_uses_norm_ = true, token_uses_router_ = false;
  bool stage_fit_ = true;             // a K split the staging forces: the largest that fits (MMFP4_CUDA_STAGE_SPLIT)
  int64_t wg_two_tile_bytes_ = kWgTwoTileBytes;  // set_wgmma_two_tile_bytes
  int attn_min_keys_ = 16;            // keys per attention split at least (attention_split)
  FastPaths fast_;
  int64_t moe_direct_calls_ = 0, shared_early_calls_ = 0, dense_persist_launches_ = 0;
  int64_t moe_sum_calls_ = 0;
  int64_t gemv_one_launches_ = 0;
  int64_t token_norm_launches_ = 0;
  int64_t attn_expand_calls_ = 0;
  int64_t token_router_launches_ = 0;
  int64_t moe_router_fused_ = 0;
  // The ids buffer of the last routing and its shared expert (-1: none): a hint for the experts' launch
  // (TileTable::known_slot), checked on the device.
  const int32_t* routed_ids_ = nullptr;
  int routed_shared_ = -1;
  int64_t mla_fused_ = 0;
  int64_t norm_blas_fused_ = 0;
  int64_t gemv_wide_launches_ = 0;
  int64_t dense_tile_launches_ = 0;
  int64_t whole_k_launches_ = 0;
  int whole_k_sms_ = 0;
  int64_t moe_stream_launches_ = 0;
  int moe_stream_blocks_ = 0;
  int64_t gemv_pair_launches_ = 0;
  int64_t gemv_kwarps_launches_ = 0;
  int64_t wgmma_launches_ = 0;
  bool wgmma_ok_ = false;
  bool bulk_copy_ok_ = false;  // the copy engine's bulk copies run (sm_90; gemv_whole_k.cu)
  // moe_router: the routing the next launch_mma may take into its epilogue (GemmArgs::route), or none.
  RouteArgs route_req_;
  void check_route(Act logits, const RouterParams& p) const;
  DType kv_dtype_ = DType::F32;       // MMFP4_CUDA_KV=bf16 halves the cache (docs/cuda.md: precision)
  size_t allocated_ = 0;

  // Largest shapes seen at upload (workspace sizing).
  int64_t max_kpad_ = 64, max_n_ = 16, max_experts_ = 0, max_inter_pad_ = 0, max_hidden_pad_ = 0;
  int64_t max_dequant_bytes_ = 0;  // largest plain MMFP4 weight as bf16 rows (the cuBLAS path's slice buffer)
  WorkspacePlan plan_;

  Buffer xb_, xb_lo_, rot_, partial_, counters_, moe_sorted_, moe_pos_, moe_tiles_, moe_count_, moe_g_, moe_u_, moe_d_,
      moe_rot_, attn_part_, attn_plan_, attn_ctr_, blas_ws_, wdq_, abf_, att_k_, att_s_, att_p_,
      argmax_part_, argmax_ctr_;
  int64_t counter_capacity_ = 0;
};

}  // namespace mmfp4::cuda
