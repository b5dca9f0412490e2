// Host-side launchers of the CUDA kernels (one op per .cu file) and their argument structs. Plain C++: included by
// the backend (cuda_backend.cpp) and by the .cu files that define them. Every launcher checks its launch and throws
// mmfp4::Error naming the op and its shapes.
//
// Shapes follow backend.h: activations [rows, cols] float32 with a row stride, weights [n = out, k = in].
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace mmfp4::cuda {

// Programmatic dependent launch for every kernel launched from now on (common.cuh, pdl_enter). Process-wide: the
// backend turns it on for sm_90 devices when FastPaths::pdl is on.
inline bool& pdl_flag() {
  static bool on = false;
  return on;
}
inline bool pdl_launches() { return pdl_flag(); }

// ---------------------------------------------------------------------------------------------------------------
// Weights as the GEMM kernels read them
// ---------------------------------------------------------------------------------------------------------------
enum class WKind : int { Fp4 = 0, Bf16 = 1, F16 = 2, F32 = 3 };

// One weight, or a stack of experts of equal shape. Fp4 weights are in the tiled layout of repack.h (docs/format.md,
// "CUDA layout"); dense weights are the checkpoint's rows, untouched.
struct GemmWeight {
  WKind kind = WKind::Fp4;
  const void* data = nullptr;        // Fp4: code tiles (16 bytes per lane); dense: [n, k] row-major elements
  const uint32_t* scales = nullptr;  // Fp4: [n_tiles][groups][8] f16 pairs
  int n = 0;                         // rows (output features)
  int k = 0;                         // columns as stored (fp4: k_stored, the rotated width; dense: k)
  int n_tiles = 0, k_chunks = 0, groups = 0, group_size = 0;  // fp4 tile layout (16 rows x 64 columns a tile)
  int layout = 1;                    // fp4 bit layout inside the tile words: 1 or 2 (repack.h)
  int row0 = 0;                      // generic kernel only: first stored row of this (row-sliced) view
  int64_t expert_stride = 0;         // between stacked experts: 16-byte tiles (fp4) or elements (dense)
  int64_t expert_scale_stride = 0;   // u32 words (fp4)
};
// Columns of W as a product reads them: MMFP4 tiles padded to whole 64-column chunks, dense weights as stored.
inline int64_t product_width(const GemmWeight& gw) { return gw.kind == WKind::Fp4 ? int64_t(gw.k_chunks) * 64 : gw.k; }

// MoE token tiles: entry i of `tiles` is {expert, row0, rows}: rows [row0, row0 + rows) of the expert-sorted
// activations use expert `expert`; *tile_count entries are valid (the rest of the launched grid returns at once).
struct TileTable {
  const int32_t* tiles = nullptr;
  const int32_t* count = nullptr;
  // Direct (one token's slots, FastPaths::moe_direct): `tiles` is the slots' expert ids and tile t is slot t alone
  // (expert tiles[t] if in [0, n_experts), else skipped; row t, one row): no plan kernel, no count.
  bool direct = false;
  int n_experts = 0;
  // Direct tables: the slot whose expert is known before the launch (the shared expert, which routing writes last),
  // so its blocks load their first weights before waiting for the routing; -1: none. A hint only: after the wait the
  // block compares it with tiles[slot] and loads again where they differ.
  int known_slot = -1, known_expert = -1;
};

// ---------------------------------------------------------------------------------------------------------------
// Linear layers (gemv_fp4.cu, activations.cu, linear_generic.cu)
// ---------------------------------------------------------------------------------------------------------------
// x [m, k] float32 -> xb, the 16-bit activation fragments the mma kernels read: [rows_pad / 8][kb32][32 lanes][8]
// (lane 4g + c holds row 8t + g, columns 32b + 8c .. 8c + 7). Columns >= k_valid and rows past m are zero.
struct PrepArgs {
  const float* x = nullptr;
  int64_t x_stride = 0;
  int m = 0;                         // rows of x (without row_map), or entries of row_map
  int k_valid = 0;                   // columns of x that exist
  const int32_t* row_map = nullptr;  // xb row i <- x row row_map[i] / row_div (negative: zeros); null: i / row_div
  int row_div = 1;
  bool map_is_mask = false;          // row_map only marks missing rows (negative); present rows map to themselves
  // Head-major gather (hm_heads > 0): xb row r = h * hm_tpad + t <- x row t * hm_heads + h (t < hm_tokens).
  int hm_heads = 0, hm_tokens = 0, hm_tpad = 0;
  int rows_pad = 0;                  // xb rows, a multiple of 8
  int kb32 = 0;                      // 32-column blocks of xb
  bool f16 = false;                  // f16 (saturating) instead of bf16, for F16 dense weights
  int glu_off = 0;                   // > 0: the value of column k is silu(x[k]) * x[k + glu_off] (MoE [gate | up])
  void* xb = nullptr;
  // Non-null: also the low halves, x - hi rounded again (hi + lo carries ~16 significant bits, nearly float32).
  void* xb_lo = nullptr;
  // The wgmma tiled GEMM's order (gemm_tiled_wg.cu): the same 512 bytes per 8 rows and 32 columns, as 4 wgmma core
  // matrices [8 rows][8 k] of 128 bytes: 32-bit word 32 i + 4 g + c is register i of lane 4 g + c above.
  bool wg_order = false;
  // The values times kRawActScale (2^64, exact) before rounding: the raw decode loop's activations (gemv_whole_k.cu),
  // the same bits as the staged loop's.
  bool raw = false;
};
void launch_prepare_activations(const PrepArgs& a, cudaStream_t s);

// out [m, k_pad] (contiguous) = x zero-padded from k to k_pad, then Hadamard-rotated block-wise (block = had).
void launch_rotate_pad(const float* x, int64_t x_stride, int m, int k, int k_pad, int had, float* out,
                       cudaStream_t s);

// MoE routing of one token (moe_route.cuh): ids/w rows of K (+1 with shared >= 0) slots, as launch_moe_route_warp.
struct RouteArgs {
  int32_t* ids = nullptr;     // null: no routing
  float* w = nullptr;
  const float* bias = nullptr;
  int E = 0, K = 0, shared = -1;
  bool sigmoid = false, norm = false;
  float scaling = 1.0f;
};

// y (+)= x W^T on tensor cores (bf16 or f16 operands, float32 accumulation). One warp owns a 16-row tile of W and
// a token tile of 8 * nt rows; a block is 8 warps (128 rows); grid = (row blocks, token tiles, splits of K).
struct GemmArgs {
  GemmWeight w;
  const void* xb = nullptr;  // prepared activations
  const void* xb_lo = nullptr;  // their low halves (two mma per step), or null (one mma: 16-bit activations)
  int kb32 = 0;
  int m = 0;                 // token rows (plain linear)
  TileTable tiles;           // MoE: token tiles by expert (else null)
  int grid_tiles = 1;        // token tiles launched
  int nt = 1;                // n8 token tiles per warp: 1, 2, 4 or 8
  float* y = nullptr;
  int64_t y_stride = 0;
  bool accumulate = false;
  int gshift = -1;           // log2(group_size / 32) when that is a power of two, else -1
  // Per-head mode (heads > 0; MLA W_UV): weight "expert" h is head h's row block; activations are head-major
  // (row h * head_tpad + t, prepared with PrepArgs::hm_*), output row of (t, h) is y + h * y_head_stride +
  // t * y_stride; grid_tiles = heads * ceil(head_tokens / (8 * nt)).
  int heads = 0, head_tokens = 0, head_tpad = 0;
  int64_t y_head_stride = 0;
  // Staged activations (FastPaths::prep, decode shapes): instead of xb/xb_lo, each block converts the fp32 rows of
  // its token tile and the columns of its K split from `prep` into shared memory (stage_rows rows of stage_stride
  // 16-bit values, hi then lo), with the same rounding as launch_prepare_activations: no separate launch.
  bool stage = false;
  int stage_rows = 0, stage_stride = 0;
  int stage_lo = 0;          // offset of the low halves (stage_lo_offset)
  bool stage_vec = false;    // prep.x rows are 16-byte aligned (float4 loads)
  PrepArgs prep;
  // Staged only (FastPaths::norm): the activations are rmsnorm(x) of a deferred Backend::rmsnorm over prep.k_valid
  // columns: each block normalises the rows it stages with the norm kernel's own reduction (same bits), and block
  // (0, 0, 0) also writes the normalised rows to norm_out.
  const float* norm_w = nullptr;
  float norm_eps = 0.0f;
  float* norm_out = nullptr;
  int64_t norm_out_stride = 0;
  bool raw = false;          // the raw decode loop where it applies (FastPaths::raw_gemv, gemm_mma_raw_ok)
  // Raw loop of a plain linear (or per-head W_UV, one token tile) whose blocks all fit one wave at 2 per SM: compiled
  // for 2 blocks per SM (U = 8 chunks per batch; 102 / 109 registers for one / two token tiles, so the compiler
  // overlaps a batch's chunk pairs) instead of 3 or 4 (80 / 64 registers). CudaBackend::launch_mma.
  bool wide = false;
  // Raw loop, one token tile of at most 4 rows (FastPaths::gemv_pair): the tile's 8 mma columns hold its tokens' hi
  // and lo halves side by side (column 2i: token i's hi, 2i + 1: its lo), so one mma per step takes both halves
  // (half the mma and shared-memory reads of two mma per step); each lane adds its two columns at the end.
  bool pair = false;
  // Router GEMM (one row block, one 8-row token tile, sigmoid routing; CudaBackend::moe_router): the block that
  // stores the logits then routes every token row, a warp per row (the routing kernel's function and bits).
  RouteArgs route;
  int splits = 1, cps = 0;   // splits of the k chunks (64 columns each), cps chunks per split
  // K split across a block's warps (raw loop, one or two token tiles, splits == 1; FastPaths::gemv_kwarps): kslices
  // warps (2, 4 or 8) share a weight tile, warp slice s streaming chunks [s * slice_chunks, (s + 1) * slice_chunks)
  // of the block's range, so a block holds 8 / kslices tiles; the slices' sums are added in slice order through
  // shared memory (no partial sums in global memory, no counter). 1: each warp its own tile over the whole range.
  int kslices = 1, slice_chunks = 0;
  // Grid (token tile, row block, split) instead of (row block, token tile, split): 16-bit weights without staging
  // (plain linears of more than one token tile, FastPaths::dense_tiles), so that the token tiles of a row block run
  // together and all but the first find its weight rows in L2.
  bool tile_major = false;
  // Whole-K launch (gemv_whole_k.cu, FastPaths::whole_k / whole_k_pair): 16-row weight tiles per block (one or two
  // consumer warps each), 0: not this launch; its shared-memory slots and the stages of staged rows requested before
  // the wait for the previous kernel (both set by launch_gemm_whole_k).
  int whole_k_tiles = 0, whole_k_slots = 0, whole_k_early = 0;
  // The whole-K launch's staged rows loaded by all its threads in batches (FastPaths::stage_batch, stage_activations).
  bool stage_batch = false;
  // One token tile of a 16-bit dense weight on persistent blocks (gemv_dense.cu, FastPaths::dense_persist): the grid.
  int persist_blocks = 0;
  float* partial = nullptr;  // splits > 1: [grid_tiles][splits][8 * nt][row blocks * 128]
  int32_t* counters = nullptr;  // splits > 1: [grid_tiles][row blocks], zero between launches
};
void launch_gemm_mma(const GemmArgs& a, cudaStream_t s);
// Staged activations per block at most (hi + lo rows of the block's K split): 3 blocks of the decode GEMV still
// fit an SM (228 KB); above 48 KB the kernel opts in (launch_cfg).
constexpr int64_t kStageMaxBytes = 72 << 10;
// The staged low halves start stage_lo_offset values after the high ones: past the stage_rows rows of stride values,
// plus 32 when stage_rows is even, so that a row's hi and lo pieces fall in different halves of the banks (the paired
// loop reads both in one LDS.128 phase). The block's shared memory is staged_bytes.
inline int stage_lo_offset(int rows, int stride) { return rows * stride + (rows % 2 ? 0 : 32); }
inline int64_t staged_bytes(int rows, int stride, bool split) {
  return 2 * int64_t(split ? stage_lo_offset(rows, stride) + rows * stride : rows * stride);
}
// Blocks of that launch resident per SM (its register cap; the loop variant depends on nt, tiles and heads).
int gemm_mma_blocks_per_sm(const GemmArgs& a);
// Whether the launch takes the raw decode loop (gemv_fp4.cu): MMFP4 layout 2, staged hi + lo activations, nt <= 2,
// groups of a power of two >= 128 columns, and splits of K that start on a group.
bool gemm_mma_raw_ok(const GemmArgs& a);

// The same product for 1..16 token rows of a plain MMFP4 linear whose 16-row tiles fill the GPU (gemv_whole_k.cu):
// one block per SM owns whole_k_tiles tiles over all of K (no split), weights brought by the copy engine (sm_90);
// 5..16 rows with activations prepared with PrepArgs::raw (copied too), 1..4 rows staged in the block where its codes
// over all of K fit its shared memory (GemmArgs::stage, with stage_rows = m and all of K: stage_stride = 64 k_chunks +
// 32). gemm_whole_k_tiles: the tiles per block for `sms` SMs, or 0 where the weight has too few tiles to give each SM
// 8 (or more than 15 each).
int gemm_whole_k_tiles(const GemmWeight& w, int sms);
bool gemm_whole_k_ok(const GemmArgs& a);
void launch_gemm_whole_k(const GemmArgs& a, cudaStream_t s);

// The MoE GEMVs of a plan's token tiles (TileTable with a device count; nt = 1 or 2, activations prepared with
// PrepArgs::raw) on `blocks` persistent blocks (one per SM), each streaming an equal share of the (token tile, weight
// tile) pairs through shared memory by the copy engine (moe_stream.cu; sm_90 and the simulator).
bool moe_stream_ok(const GemmArgs& a);
void launch_moe_stream(const GemmArgs& a, int blocks, cudaStream_t s);

// One token tile (<= 8 staged rows, one K split) of a 16-bit dense weight on persistent blocks (gemv_dense.cu):
// dense_token_blocks blocks (2 per SM at most), the same bits as the staged dense loop of gemm_mma.
bool dense_token_ok(const GemmArgs& a);
int dense_token_blocks(const GemmArgs& a, int sms);
inline int dense_token_blocks_max(int sms) { return 2 * sms; }  // the launch's blocks with a tile for every warp
void launch_dense_token(const GemmArgs& a, cudaStream_t s);

// The same product for MMFP4 weights and many tokens (gemm_tiled.cu): a block owns 128 weight rows x 8 * nt tokens
// (nt = 8 or 16), K streamed through shared memory; plain linears or MoE tiles (not per-head). Its shared memory:
void launch_gemm_tiled(const GemmArgs& a, cudaStream_t s);
int gemm_tiled_smem(int bn, bool split_x);
// The same on wgmma (sm_90a; gemm_tiled_wg.cu): 32- or 64-token tiles (nt = 4 or 8) of MMFP4 weights in groups of a
// multiple of 64 columns (gemm_tiled_wg_weight_ok), activations prepared with PrepArgs::wg_order. wgmma_available():
// the device runs this build's sm_90a code.
void launch_gemm_tiled_wg(const GemmArgs& a, cudaStream_t s);
bool gemm_tiled_wg_weight_ok(const GemmWeight& w);
bool gemm_tiled_wg_ok(const GemmArgs& a);
bool wgmma_available(cudaStream_t s);

// Fallback for any shape and format (float32 FMA, exact weights): y (+)= x W^T.
struct GenericArgs {
  GemmWeight w;
  const float* x = nullptr;
  int64_t x_stride = 0;
  int k = 0;                         // columns of x used (the weight's stored width)
  int m = 0;                         // output rows (plain), or rows of the expert-sorted buffers (MoE)
  const int32_t* row_map = nullptr;  // x row of output row i = row_map[i] / row_div (negative: skip); null: i
  int row_div = 1;
  bool map_is_mask = false;          // as PrepArgs
  TileTable tiles;                   // MoE: expert of each row range (else expert 0 for every row)
  int grid_tiles = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
  bool accumulate = false;
};
void launch_gemm_generic(const GenericArgs& a, cudaStream_t s);

// ---------------------------------------------------------------------------------------------------------------
// Other ops
// ---------------------------------------------------------------------------------------------------------------
void launch_hadamard(float* x, int64_t stride, int rows, int cols, int block, cudaStream_t s);
void launch_rmsnorm(const float* x, int64_t xs, float* out, int64_t os, int rows, int cols, const float* w,
                    float eps, cudaStream_t s);
// The same norm, also writing out's rows as 16-bit (bf16, or saturated f16) into ob [rows, ld], zero past cols up
// to cols_pad: the input of a cuBLAS product, as launch_to_16bit would make it from out.
void launch_rmsnorm_16bit(const float* x, int64_t xs, float* out, int64_t os, int rows, int cols, const float* w,
                          float eps, uint16_t* ob, int64_t ld, int cols_pad, bool f16, cudaStream_t s);
void launch_rope(float* x, int64_t stride, int rows, int heads, int64_t head_stride, int off, const float* cos,
                 const float* sin, int dim, bool interleaved, const int32_t* positions, int max_positions,
                 cudaStream_t s);
void launch_silu_mul(const float* g, int64_t gs, const float* u, int64_t us, float* o, int64_t os, int rows,
                     int cols, cudaStream_t s);
void launch_add(float* x, int64_t xs, const float* y, int64_t ys, int rows, int cols, cudaStream_t s);
void launch_add_bias(float* x, int64_t xs, int rows, int cols, const float* b, cudaStream_t s);
void launch_gather_rows(const float* x, int64_t xs, const int32_t* rows_dev, int n, int cols, float* out,
                        int64_t os, cudaStream_t s);
// out[t] = row tokens[t] of the table (dequantized, rotation undone); cols = logical width.
void launch_embed(const GemmWeight& table, int had, const int32_t* tokens, int n_tokens, int vocab, float* out,
                  int64_t os, int cols, cudaStream_t s);
// cache row slots[t] (bf16, `width` values) <- [a[t] (a_cols) | b[t] (b_cols)]; negative slots are skipped.
// The cache holds bf16 (f32 = false) or float32 values.
void launch_store_rows(void* cache, bool f32, int64_t width, const int32_t* slots, int n_tokens, const float* a,
                       int64_t as, int a_cols, const float* b, int64_t bs, int b_cols, cudaStream_t s);

// Attention of query heads over the paged bf16 cache of their own sequence, causal (positions [0, pos[t]]).
// Query row of (token t, head h) = [q1 (d1 values) | q2 (d2 values)]; key = cache[k_off .. k_off + d1 + d2) of the
// head's kv group; value = cache[v_off .. v_off + dv). GQA: q2 empty; MLA: q1 = q_lat, q2 = q_pe, one kv group.
struct AttnArgs {
  const float* q1 = nullptr;
  const float* q2 = nullptr;
  int64_t q_row_stride = 0;  // between tokens
  int64_t q_head_stride = 0; // between heads of a token
  int64_t q2_row_stride = 0, q2_head_stride = 0;
  int d1 = 0, d2 = 0, dv = 0;
  int heads = 0, kv_heads = 1;
  int64_t k_off_per_kvh = 0, k_off = 0;  // key of kv head j starts at k_off + j * k_off_per_kvh
  int64_t v_off_per_kvh = 0, v_off = 0;
  const void* cache = nullptr;
  bool cache_f32 = false;    // float32 cache (else bf16)
  int64_t width = 0, block_size = 0;
  float scale = 1.0f;
  int n_tokens = 0;
  const int32_t* positions = nullptr;
  const int32_t* seq = nullptr;
  const int32_t* block_tables = nullptr;
  int64_t max_blocks = 0;
  float* out = nullptr;
  int64_t out_row_stride = 0, out_head_stride = 0;
  // MLA decode with one head per block (FastPaths::attn_expand: mla_expand_v joins the attention's launch): the block
  // that finishes head h of token t also applies the head's value projection, ev_out[t, h, :ev_w.n] = W_h out[t, h]
  // with W_h = "expert" h of ev_w (MMFP4 layout 2, groups of a power of two >= 128, K = dv in whole chunk pairs).
  // ev_w.data null: none.
  GemmWeight ev_w;
  float* ev_out = nullptr;
  int64_t ev_row_stride = 0, ev_head_stride = 0;
  int ev_off = 0;  // set by the launcher: the projection's shared memory, floats from the start of the dynamic area
};
// Whether the value projection can join an attention launch (AttnArgs::ev_w; attention.cu).
bool attention_expand_ok(const AttnArgs& a, const GemmWeight& w);
// Split over the KV length (splits > 1): o [T][heads][splits][dv] unnormalised outputs and ml [T][heads][splits][2]
// running max and sum of each split, merged by the last split block of each (token, head group) (attention.cu).
struct AttnSplit {
  int splits = 1;
  int min_keys = 16;            // keys per split at least: shorter contexts use fewer of the splits
  float* o = nullptr;
  float* ml = nullptr;
  int32_t* counters = nullptr;  // [T][kv heads x head groups], zero between launches (the merging block resets them)
};
// staged: key/value tiles through shared memory where the shapes allow (attention.cu; FastPaths::attn_stage).
void launch_attention(const AttnArgs& a, cudaStream_t s, const AttnSplit& split = AttnSplit{}, bool staged = false);
// Blocks of the unsplit launch (token x kv head x group of up to 8 query heads).
int attention_blocks(const AttnArgs& a);
// Tensor-core attention for long prefill batches (attention_tc.cu): attention_tc_plan fills the geometry and says
// whether the shapes fit (value width 64/128/256/512, Q and a key tile in max_smem bytes); the caller gives `blocks`
// (2 * n_tokens ints) and `count` (1 int) of device workspace.
struct AttnTc {
  int hb = 0, head_blocks = 0, tq = 0, dk_pad = 0, dv_pad = 0, v_col = 0;
  bool v_in_k = false;
  size_t smem = 0;
  int32_t* blocks = nullptr;
  int32_t* count = nullptr;
};
bool attention_tc_plan(const AttnArgs& a, AttnTc& tc, size_t max_smem);
void launch_attention_tc(const AttnArgs& a, const AttnTc& tc, cudaStream_t s);

// MLA absorbed products on kv_b [heads * (nope + v), R] (mla_absorb.cu).
void launch_mla_absorb_q(const float* q_nope, int64_t qs, int rows, int heads, int nope, int v, const GemmWeight& w,
                         int R, float* q_lat, int64_t ls, cudaStream_t s);
// The same for MMFP4 kv_b with group size % 32 == 0, from whole 16-byte tile fragments (FastPaths::absorb).
// With prep (FastPaths::mla_fuse): the same launch also runs mla_prepare's rows as blocks of their own (its T rows,
// 128-thread blocks: latent width 256..1023).
struct MlaPrepArgs;
void launch_mla_absorb_q_tiles(const float* q_nope, int64_t qs, int rows, int heads, int nope, int v,
                               const GemmWeight& w, int R, float* q_lat, int64_t ls, cudaStream_t s,
                               const MlaPrepArgs* prep = nullptr);

// MoE (moe_route.cu, moe_experts.cu). ids/w rows: top_k entries, and with shared >= 0 one more (expert `shared`,
// weight 1: RouterParams::shared_id).
void launch_moe_route(const float* logits, int64_t ls, int T, int E, const float* bias, bool sigmoid, int top_k,
                      int n_group, int topk_group, bool norm_topk_prob, float scaling, int shared, int32_t* ids,
                      float* w, cudaStream_t s);
// The same without expert groups, a warp per token (FastPaths::moe): same choices, same weights.
void launch_moe_route_warp(const float* logits, int64_t ls, int T, int E, const float* bias, bool sigmoid, int top_k,
                           bool norm_topk_prob, float scaling, int shared, int32_t* ids, float* w, cudaStream_t s);
// Groups the T * K (token, slot) pairs by expert: sorted[i] = flat index t * K + j (or -1 padding) with each
// expert's rows starting at a multiple of `align`; pos[flat] = its sorted row; tile table of up to `tile_rows` rows.
void launch_moe_plan(const int32_t* ids, int T, int K, int E, int align, int tile_rows, int32_t* sorted,
                     int32_t* pos, int32_t* tiles, int32_t* tile_count, int max_tiles, cudaStream_t s);
// out[t] += sum_j w[t, j] * d[pos[t * K + j]] in slot order (pos null: row t * K + j, the direct tiles' order).
void launch_moe_combine(const float* d, int64_t ds, const int32_t* pos, const float* w, int T, int K, int H,
                        float* out, int64_t os, cudaStream_t s);
// One token's linear, a block per 16-row tile over the whole K (gemv_token.cu): out[0, n] (+)= sum_s wts[s]
// (W[ids[s]] a_s)[n]. A plain linear (FastPaths::gemv_one: one slot, ids and wts null, a = gu as is), the same after
// the pending norm (FastPaths::token_norm: norm_w), the router with its routing (FastPaths::token_router: route, every
// tile in one block), or the MoE down projection and combine (FastPaths::moe_sum: a_s = silu(gu[s, :inter]) *
// gu[s, inter:2 inter]); ids must come from a kernel at least two launches back (the routing).
constexpr int kTokenGemvMaxTokens = 4;  // token rows of one launch: the n8 tile's 4 column pairs
constexpr int kTokenGemvMaxChunks = 8;  // 64-column chunks per warp (registers): slots x k_chunks <= 16 warps x 8
struct TokenGemvArgs {
  GemmWeight w;                   // MMFP4 layout 2; a stack of experts (expert_stride) when ids is set
  const int32_t* ids = nullptr;   // [slots] experts (outside [0, n_experts): the slot adds nothing); null: expert 0
  const float* wts = nullptr;     // [slots] routing weights; null: 1
  int slots = 0, n_experts = 0;
  const float* gu = nullptr;      // [slots, gu_stride] input rows: glu: gate at [0, inter), up at [inter, 2 inter)
  int64_t gu_stride = 0;
  int inter = 0;                  // input columns that exist (a multiple of 8)
  bool glu = true;                // false: the input row as is (FastPaths::gemv_one: a plain linear, one slot)
  bool accumulate = true;         // out (+)= the product
  float* out = nullptr;           // [tokens, w.n] (row stride out_stride)
  int64_t out_stride = 0;
  // Plain slot only: up to kTokenGemvMaxTokens token rows (gu rows, gu_stride apart) in the same launch, token t in
  // the mma's column pair 2t, 2t + 1 (hi, lo): the weights are read once for all of them.
  int tokens = 1;
  int tiles_per_block = 1;        // 1, 2, 4, .. 16 weight tiles share a block's 16 warps
  const float* norm_w = nullptr;  // one plain slot: the input is rmsnorm(gu[t, :inter]) * norm_w (eps norm_eps)
  float norm_eps = 0.0f;
  float* norm_out = nullptr;      // [tokens, inter] the normalised rows (block 0 writes them; norm_out_stride), or null
  int64_t norm_out_stride = 0;
  RouteArgs route;                // ids set: route the logits out (every tile in one block, sigmoid, no groups)
  int per = 0, gshift = 0;        // set by the launcher
};
bool token_gemv_ok(const GemmWeight& w, int slots, int inter, int64_t gu_stride, int tiles_per_block = 1,
                   int tokens = 1, bool norm = false);
void launch_token_gemv(TokenGemvArgs a, cudaStream_t s);

// ---------------------------------------------------------------------------------------------------------------
// Operands of the cuBLAS prefill path (to_bf16.cu, causal_softmax.cu; cuda_backend_blas.cpp)
// ---------------------------------------------------------------------------------------------------------------
// MMFP4 tiles [tile0, tile0 + tiles) of w -> bf16 rows [16 tiles, ld], row-major, each weight = code x its group
// scale rounded once to bf16; columns [0, 64 k_chunks) (zero codes past the stored width give zeros).
void launch_dequant_bf16(const GemmWeight& w, int tile0, int tiles, uint16_t* out, int64_t ld, cudaStream_t s);
// out[r, col0 + c] = x[r, c] as bf16 (f16: saturated to +-65504) for c < cols, 0 for cols <= c < cols_pad.
void launch_to_16bit(const float* x, int64_t x_stride, int rows, int cols, int cols_pad, bool f16, uint16_t* out,
                     int64_t ld, int col0, cudaStream_t s);
// out[j, 0 : width] = bf16 of the cache row of sequence position j < n (block_table: that sequence's blocks).
void launch_gather_cache_bf16(const void* cache, bool cache_bf16, int64_t block_size, int64_t width,
                              const int32_t* block_table, int n, uint16_t* out, int64_t ld, cudaStream_t s);
// P[r, j] = softmax over j <= min(n_keys - 1, pos0 + r / heads) of scale * S[r, j], as bf16; 0 for later keys.
void launch_causal_softmax_bf16(const float* S, int64_t ld_s, int rows, int heads, int pos0, int n_keys, float scale,
                                uint16_t* P, int64_t ld_p, cudaStream_t s);

// MLA between kv_a and attention (mla_prepare.cu): per token row, latent = rmsnorm(ckv[:R]) * norm_w, rope on
// ckv[R:R+P] and on each query head's columns [q_off, q_off + P), latent and kpe stored at the slot (< 0: not).
struct MlaPrepArgs {
  float* ckv = nullptr;
  int64_t ckv_stride = 0;
  float* latent = nullptr;
  int64_t latent_stride = 0;
  const float* norm_w = nullptr;
  float eps = 0.0f;
  int rows = 0, R = 0, P = 0;
  float* q = nullptr;
  int64_t q_stride = 0, head_stride = 0;
  int heads = 0, q_off = 0;
  const float* cos_t = nullptr;
  const float* sin_t = nullptr;
  int max_positions = 0;
  bool interleaved = false;
  const int32_t* positions = nullptr;
  const int32_t* slots = nullptr;
  void* cache = nullptr;
  bool cache_f32 = true;
  int64_t width = 0;
};
void launch_mla_prepare(const MlaPrepArgs& a, cudaStream_t s);
// Threads of a prepare block: rmsnorm.cu's choice for a row of R, so that the latent's sum is the norm kernel's.
inline int mla_prepare_threads(int R) { return R >= 1024 ? 256 : R >= 256 ? 128 : 64; }

// ids[r] = argmax of row r as the host sampler's (sampling.cu: ties to the lowest index, NaN never wins, 0 when
// x[r][0] is NaN), each row split over blocks: part holds argmax_part_bytes(rows, sms) of their results, ctr one
// counter per row, zero before the first launch and back to zero after each.
int argmax_chunks(int rows, int cols, int sms);
int64_t argmax_part_bytes(int rows, int sms);
void launch_argmax_rows(const float* x, int64_t xs, int rows, int cols, int sms, void* part, int32_t* ctr,
                        int32_t* ids, cudaStream_t s);

// Streaming read bandwidth (GB/s, best of reps) over buf[0, bytes) (read_bandwidth.cu); sink: 16 bytes x 8 x sms
// of writable device memory. Benchmarks only.
double measure_read_bandwidth(const void* buf, size_t bytes, void* sink, int sms, int reps, cudaStream_t s);

}  // namespace mmfp4::cuda
