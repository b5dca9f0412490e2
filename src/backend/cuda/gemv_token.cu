// One token's linear with a block per 16-row weight tile over the whole K (decode of one sequence):
//   out[0, n] (+)= sum_s w[s] (W[ids[s]] a_s)[n]   over slots s < slots, K = slots x k_chunks chunks
// Two uses (CudaBackend):
//   * a plain linear of one token whose tiles number at most the SMs (FastPaths::gemv_one; o_proj at decode): one slot,
//     expert 0, weight 1, a = x as is. The decode GEMV gives such a linear 8 warps per tile (K slices, gemv_fp4.cu);
//     here 16 warps share a tile, so each streams half as many chunks and all of them load before the PDL wait.
//   * the MoE down projection and combine of one token (FastPaths::moe_sum): slot s = the token's s-th expert,
//     a_s = silu(gu[s, :I]) * gu[s, I:2I], w = the routing weights, added into the residual. The direct path's down
//     GEMM split each slot over K across blocks (partial sums in global memory, a counter, a last block) and a
//     combine launch added the slots; here there are no partials, no counter and no combine launch.
//   * a one-token linear whose input is the pending rmsnorm's output (FastPaths::token_norm; q_a + kv_a at decode):
//     the block normalises the row while staging it (norm_w), and block 0 writes the normalised row (norm_out).
//   * the MoE router of one token (FastPaths::token_router): its tiles share one block (tiles_per_block, the block's
//     warps split between them), its norm as above, and once the logits are stored warp 0 routes them (route: the
//     routing kernel's function, the same bits). The K-sliced GEMV split the router's K across 16 blocks whose
//     partial sums met through a counter in the last one; here there is one block and no partials.
// A block's 16 warps (16 / tiles_per_block per tile) stream equal ranges of K (whole chunk pairs: a pair shares one
// scale). A warp's range may cross slots; its sum of each slot's part is multiplied by that slot's weight when the
// range leaves the slot. The
// activations are staged as in the decode GEMV (scaled by kRawActScale, hi + lo bf16, the same bits), and a warp's
// products are the raw loop's with paired columns (gemv_fp4.cu, PAIR): column 0 holds the token's hi half, column 1
// its lo half. The warps' sums meet in shared memory in warp order, so the result is the same on every run; it
// differs from the paths it replaces only in the order of additions.
// The plain uses (one slot: gemv_one, token_norm, token_router) also take 2..4 tokens of a decode batch (tokens):
// token t in column pair 2t, 2t + 1, so the weights stream once and the mma count is one token's; each token's row
// is staged apart (and normalised with its own sum of squares), its sums stored to its own output row, and the router
// routes token t in warp t. Each token's results are its one-token launch's bits (TokenGemvTakesTwoToFourTokens).
// That general staging is a second instance (token_gemv_kernel<kTokenGemvMaxTokens>, stage_rows): compiled into the
// one-token kernel it cost decode batch 1 5.7% on the H200, so one token keeps its own (token_gemv_kernel<1>).
//
// The weight chunks are loaded before the wait on the previous kernel (pdl_enter). With slots the experts are needed
// for that: they were written by the routing, two launches back. The previous kernel (gate/up) waited for the routing
// before it let this launch start (its blocks call launch_dependents only after their own wait), so the ids are in
// memory; they are read through L2 (__ldcg), never from a stale L1 line.
#include "backend/cuda/activations.cuh"
#include "backend/cuda/check.h"
#include "backend/cuda/moe_route.cuh"

namespace mmfp4::cuda {

namespace {

constexpr int kWarps = 16;  // 512 threads: a 16-row tile's K over 16 warps (GLM: 120 chunks, 8 per warp)
constexpr int kMaxPieces = 2;  // 8-value pieces of the staged row per thread: L / 8 <= 1024 (kTokenGemvMaxChunks)

__device__ __forceinline__ bool valid_expert(const TokenGemvArgs& p, int e) { return e >= 0 && e < p.n_experts; }
__device__ __forceinline__ int slot_expert(const TokenGemvArgs& p, int s) { return p.ids ? __ldcg(p.ids + s) : 0; }

// Chunks per warp of a launch with `total` chunks per tile: whole pairs, kWarps / tiles_per_block warps per tile.
int chunks_per_warp(int total, int tiles_per_block) {
  const int wpt = kWarps / tiles_per_block;
  return ((total + wpt - 1) / wpt + 1) / 2 * 2;
}

// The router's routing of token t, out of line (kept out of the products' register allocation).
__device__ MMFP4_NOINLINE void route_logits(const float* logits, RouteArgs a, int t) {
  route_token_warp<kWarps * 16 / 32>(logits, a, t, nullptr);
}

// Shared memory of a launch: each token's staged row, hi at [0, L), lo at [L + 32, 2 L + 32); tokens 2 L + 64 apart.
size_t token_gemv_smem(int total, int tokens) {
  const size_t L = size_t(total) * 64;
  return tokens == 1 ? 2 * (2 * L + 32) : 2 * (2 * L + 64) * size_t(tokens);
}
constexpr size_t kMaxSmem = 100 << 10;  // a launch's staged rows at most (4 tokens of K 6,144)

// One token's row staged (MAXT == 1 of token_gemv_kernel): hi at st[0, L), lo at st[lo_off, lo_off + L).
// Kept apart from stage_rows, whose general form cost one-token launches (H200, decode batch 1: -5.7%).
__device__ __forceinline__ void stage_row(const TokenGemvArgs& p, uint16_t* st, int L, int lo_off, int kce, int warp,
                                          int lane) {
  // Every piece's loads first (all in flight together), then the conversions.
  // With norm_w (one slot, no glu) the norm weights' pieces load with the row's (ld[i][2..3]).
  float4 ld[kMaxPieces][4];
#pragma unroll
  for (int i = 0; i < kMaxPieces; ++i) {
    const int k = 8 * (int(threadIdx.x) + i * int(blockDim.x)), s = k / (kce * 64), col = k - s * kce * 64;
    const bool live = k < L && col < p.inter && valid_expert(p, slot_expert(p, min(s, p.slots - 1)));
    const float* gr = p.gu + int64_t(s) * p.gu_stride + col;  // inter % 8 == 0 (launcher)
#pragma unroll
    for (int h = 0; h < 4; ++h)
      ld[i][h] = live && (p.glu || h < 2)
                     ? __ldcg(reinterpret_cast<const float4*>(gr + (h / 2) * p.inter + (h % 2) * 4))
                 : live && p.norm_w != nullptr ? __ldg(reinterpret_cast<const float4*>(p.norm_w + col + (h % 2) * 4))
                                               : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  // The norm: the row's sum of squares (each thread's pieces in order, the warps' sums in warp order).
  float inv = 1.0f;
  if (p.norm_w) {
    __shared__ float ss_warp[kWarps];
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxPieces; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float4 v = ld[i][h];
        ss = fmaf(v.x, v.x, ss);
        ss = fmaf(v.y, v.y, ss);
        ss = fmaf(v.z, v.z, ss);
        ss = fmaf(v.w, v.w, ss);
      }
    ss = warp_sum(ss);
    if (lane == 0) ss_warp[warp] = ss;
    __syncthreads();
    float t = 0.0f;
    for (int w = 0; w < kWarps; ++w) t += ss_warp[w];
    inv = 1.0f / sqrtf(t / float(p.inter) + p.norm_eps);
  }
#pragma unroll
  for (int i = 0; i < kMaxPieces; ++i) {
    const int k = 8 * (int(threadIdx.x) + i * int(blockDim.x));
    if (k >= L) break;
    const float4 g0 = ld[i][0], g1 = ld[i][1], u0 = ld[i][2], u1 = ld[i][3];
    float v[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
    if (p.glu) silu_mul8(g0, g1, u0, u1, v);
    if (p.norm_w) {  // the K-sliced GEMV's staging formula (gemv_fp4.cu); zero past inter (ld is zero there)
      const float nw[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = v[j] * inv * nw[j];
      if (p.norm_out && blockIdx.x == 0 && k < p.inter) {
        *reinterpret_cast<float4*>(p.norm_out + k) = make_float4(v[0], v[1], v[2], v[3]);
        *reinterpret_cast<float4*>(p.norm_out + k + 4) = make_float4(v[4], v[5], v[6], v[7]);
      }
    }
    stage_raw8(v, st + k, st + lo_off + k);
  }
}

// 2..4 tokens' rows of a plain slot staged (MAXT > 1 of token_gemv_kernel), token t's at st + t (2 L + 64) as
// stage_row's. Pieces of 8 values: q = t * prow + k / 8 (token t, column k), in batches of kMaxPieces per thread:
// every piece's loads first (all in flight together), then the conversions. With a norm all pieces are one batch
// and a warp's pieces one token's (prow % 32 == 0; the launcher): each token's sum of squares is then its (piece,
// warp) sums in order, the same 32-piece groups in the same order as stage_row's for that row alone, so the same bits.
__device__ __forceinline__ void stage_rows(const TokenGemvArgs& p, uint16_t* st, int L, int lo_off, int kce, int warp,
                                           int lane) {
  // (Its ntok == 1 forms are never taken: one token launches token_gemv_kernel<1>. Kept as measured on the H200.)
  const int ntok = p.tokens, rs = 2 * L + 64;
  const int prow = L / 8, P = ntok * prow;
  __shared__ float inv_tok[kTokenGemvMaxTokens];
  for (int b0 = 0; b0 < P; b0 += kMaxPieces * int(blockDim.x)) {
    // With norm_w (one slot, no glu) the norm weights' pieces load with the row's (ld[i][2..3]).
    float4 ld[kMaxPieces][4];
#pragma unroll
    for (int i = 0; i < kMaxPieces; ++i) {
      const int q = b0 + int(threadIdx.x) + i * int(blockDim.x), t = q / prow, k = 8 * (q - t * prow);
      const int s = k / (kce * 64), col = k - s * kce * 64;
      const bool live = q < P && col < p.inter && valid_expert(p, slot_expert(p, min(s, p.slots - 1)));
      const float* gr = p.gu + int64_t(s + t) * p.gu_stride + col;  // inter % 8 == 0 (launcher); s or t is 0
#pragma unroll
      for (int h = 0; h < 4; ++h)
        ld[i][h] = live && (p.glu || h < 2)
                       ? __ldcg(reinterpret_cast<const float4*>(gr + (h / 2) * p.inter + (h % 2) * 4))
                   : live && p.norm_w != nullptr ? __ldg(reinterpret_cast<const float4*>(p.norm_w + col + (h % 2) * 4))
                                                 : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    if (p.norm_w) {
      // Each row's sum of squares: each (piece, warp) sum (a warp's pieces are one token's), in that order.
      __shared__ float ss_warp[kMaxPieces][kWarps];
      float ss[kMaxPieces];
#pragma unroll
      for (int i = 0; i < kMaxPieces; ++i) {
        ss[i] = ntok == 1 && i > 0 ? ss[i - 1] : 0.0f;  // one token: one chain over the thread's pieces
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float4 v = ld[i][h];
          ss[i] = fmaf(v.x, v.x, ss[i]);
          ss[i] = fmaf(v.y, v.y, ss[i]);
          ss[i] = fmaf(v.z, v.z, ss[i]);
          ss[i] = fmaf(v.w, v.w, ss[i]);
        }
      }
      if (ntok == 1) {
        const float tot = warp_sum(ss[kMaxPieces - 1]);
        if (lane == 0) ss_warp[0][warp] = tot;
      } else {
#pragma unroll
        for (int i = 0; i < kMaxPieces; ++i) {
          const float tot = warp_sum(ss[i]);
          if (lane == 0) ss_warp[i][warp] = tot;
        }
      }
      __syncthreads();
      if (int(threadIdx.x) < ntok) {
        const int t = int(threadIdx.x);
        float sum = 0.0f;
        for (int i = 0; i < (ntok == 1 ? 1 : kMaxPieces); ++i)
          for (int w = 0; w < kWarps; ++w)
            if (ntok == 1 || (i * int(blockDim.x) + w * kWarp) / prow == t) sum += ss_warp[i][w];
        inv_tok[t] = 1.0f / sqrtf(sum / float(p.inter) + p.norm_eps);
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < kMaxPieces; ++i) {
      const int q = b0 + int(threadIdx.x) + i * int(blockDim.x), t = q / prow, k = 8 * (q - t * prow);
      if (q >= P) break;
      const float4 g0 = ld[i][0], g1 = ld[i][1], u0 = ld[i][2], u1 = ld[i][3];
      float v[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
      if (p.glu) silu_mul8(g0, g1, u0, u1, v);
      if (p.norm_w) {  // the K-sliced GEMV's staging formula (gemv_fp4.cu); zero past inter (ld is zero there)
        const float nw[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
        const float inv = inv_tok[t];
#pragma unroll
        for (int j = 0; j < 8; ++j) v[j] = v[j] * inv * nw[j];
        if (p.norm_out && blockIdx.x == 0 && k < p.inter) {
          float* no = p.norm_out + int64_t(t) * p.norm_out_stride + k;
          *reinterpret_cast<float4*>(no) = make_float4(v[0], v[1], v[2], v[3]);
          *reinterpret_cast<float4*>(no + 4) = make_float4(v[4], v[5], v[6], v[7]);
        }
      }
      stage_raw8(v, st + t * rs + k, st + t * rs + lo_off + k);
    }
  }

}

// MAXT: the most tokens of a launch (1: one token's code only).
template <int MAXT>
__global__ void __launch_bounds__(kWarps * kWarp, 1) token_gemv_kernel(TokenGemvArgs p) {
  const int warp = int(threadIdx.x) / kWarp, lane = int(threadIdx.x) % kWarp, g = lane >> 2, c = lane & 3;
  const int wpt = kWarps / p.tiles_per_block;  // warps per tile
  const int nt = int(blockIdx.x) * p.tiles_per_block + warp / wpt, slice = warp % wpt;
  const int kce = p.w.k_chunks, total = nt < p.w.n_tiles ? p.slots * kce : 0;
  const int k0 = min(total, slice * p.per), k1 = min(total, k0 + p.per);  // this warp's chunks (both even)
  const int cshift = p.gshift - 1;                                       // a chunk pair shares one scale

  // The warp's weight chunks [k0, k1) (chunk kc: slot kc / kce, the expert's chunk kc % kce) and their scales.
  uint4 wv[kTokenGemvMaxChunks];
  uint32_t sw[kTokenGemvMaxChunks / 2];
#pragma unroll
  for (int j = 0; j < kTokenGemvMaxChunks; j += 2) {
    const int kc = k0 + j;
    if (kc >= k1) break;
    const int s = kc / kce, kl = kc - s * kce, e = slot_expert(p, s);
    if (valid_expert(p, e)) {
      const uint4* wp = static_cast<const uint4*>(p.w.data) + e * p.w.expert_stride +
                        (int64_t(nt) * kce + kl) * kWarp + lane;
      wv[j] = ld_stream(wp);
      wv[j + 1] = ld_stream(wp + kWarp);
      sw[j / 2] = __ldg(p.w.scales + e * p.w.expert_scale_stride + int64_t(nt) * p.w.groups * 8 +
                        (kl >> cshift) * 8 + g);
    } else {
      wv[j] = wv[j + 1] = make_uint4(0u, 0u, 0u, 0u);
      sw[j / 2] = 0u;
    }
  }
  pdl_enter();

  // Staged activations: per token one row of L = total * 64 values, hi at [0, L), lo at [L + 32, 2 L + 32) (a lane
  // group's hi and lo pieces fall in different bank halves: stage_lo_offset); tokens 2 L + 64 apart (token_gemv_smem).
  MMFP4_DYN_SMEM(uint16_t, st);
  const int L = total * 64, lo_off = L + 32, ntok = MAXT == 1 ? 1 : p.tokens;
  if constexpr (MAXT == 1)
    stage_row(p, st, L, lo_off, kce, warp, lane);
  else
    stage_rows(p, st, L, lo_off, kce, warp, lane);
  __syncthreads();

  // Products: lane column g is token g / 2's hi (g even) or lo (g odd) half (columns past the tokens repeat the last
  // token; their sums are not stored); a slot's sum joins tot with its weight.
  const uint16_t* xrow = st + (MAXT == 1 ? 0 : min(g >> 1, ntok - 1) * (2 * L + 64)) + ((g & 1) ? lo_off : 0) + 8 * c;
  float acc[1][4] = {{0.0f, 0.0f, 0.0f, 0.0f}}, tot[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // acc: one n8 tile
  auto fold = [&](int s) {
    const float ws = !valid_expert(p, slot_expert(p, s)) ? 0.0f : p.wts ? __ldcg(p.wts + s) * kRawOutScale : kRawOutScale;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      tot[i] = fmaf(ws, acc[0][i], tot[i]);
      acc[0][i] = 0.0f;
    }
  };
  int cur = k0 / kce;
#pragma unroll
  for (int j = 0; j < kTokenGemvMaxChunks; j += 2) {
    const int kc = k0 + j;
    if (kc >= k1) break;
    const int s = kc / kce;
    if (s != cur) {
      fold(cur);
      cur = s;
    }
    paired_chunk_pair(acc, wv[j], wv[j + 1], sw[j / 2], xrow + 2 * kc * 32);
  }
  if (k0 < k1) fold(cur);

  // Lanes of column pair c hold token c: rows g (hi + lo columns) and g + 8. Warp order, then into out.
  __shared__ float2 red[kWarps][MAXT][8];
  if (c < ntok) red[warp][c][g] = make_float2(tot[0] + tot[1], tot[2] + tot[3]);
  __syncthreads();
  if constexpr (MAXT == 1) {
    if (int(threadIdx.x) < 16 * p.tiles_per_block) {
      const int r = int(threadIdx.x) % 16, tb = int(threadIdx.x) / 16;  // row r of the block's tile tb
      const int n = (int(blockIdx.x) * p.tiles_per_block + tb) * 16 + r;
      float sum = 0.0f;
      for (int w = tb * wpt; w < (tb + 1) * wpt; ++w) sum += r < 8 ? red[w][0][r].x : red[w][0][r - 8].y;
      if (n < p.w.n) p.out[n] = p.accumulate ? __ldcg(p.out + n) + sum : sum;
    }
  } else {
    for (int idx = int(threadIdx.x); idx < 16 * p.tiles_per_block * ntok; idx += int(blockDim.x)) {
      const int r = idx % 16, tb = idx / 16 % p.tiles_per_block, t = idx / (16 * p.tiles_per_block);  // token t,
      const int n = (int(blockIdx.x) * p.tiles_per_block + tb) * 16 + r;  // row r of the block's tile tb
      float sum = 0.0f;
      for (int w = tb * wpt; w < (tb + 1) * wpt; ++w) sum += r < 8 ? red[w][t][r].x : red[w][t][r - 8].y;
      float* o = p.out + int64_t(t) * p.out_stride + n;
      if (n < p.w.n) *o = p.accumulate ? __ldcg(o) + sum : sum;
    }
  }
  // The router (one block holds every logit): the barrier makes the block's stores visible to its own threads.
  if (p.route.ids) {
    __syncthreads();
    if (warp < ntok) route_logits(p.out + int64_t(warp) * p.out_stride, p.route, warp);
  }
}

}  // namespace

bool token_gemv_ok(const GemmWeight& w, int slots, int inter, int64_t gu_stride, int tiles_per_block, int tokens,
                   bool norm) {
  const int total = slots * w.k_chunks;
  const int G = w.group_size, tpb = tiles_per_block;
  // More tokens: a plain slot; with a norm all pieces in one batch, each warp's pieces one token's.
  const int prow = total * 8, batch = kMaxPieces * kWarps * kWarp;
  const bool toks = tokens == 1 || (tokens >= 1 && tokens <= kTokenGemvMaxTokens && slots == 1 &&
                                    token_gemv_smem(total, tokens) <= kMaxSmem &&
                                    (!norm || (prow * tokens <= batch && prow % kWarp == 0)));
  return w.kind == WKind::Fp4 && w.layout == 2 && w.k_chunks % 2 == 0 && slots > 0 && tpb >= 1 && tpb <= kWarps &&
         (tpb & (tpb - 1)) == 0 && chunks_per_warp(total, tpb) <= kTokenGemvMaxChunks && G >= 128 &&
         (G & (G - 1)) == 0 && inter % 8 == 0 && inter <= w.k_chunks * 64 && gu_stride % 4 == 0 && toks;
}

void launch_token_gemv(TokenGemvArgs a, cudaStream_t s) {
  const int tpb = a.tiles_per_block;
  if (!token_gemv_ok(a.w, a.slots, a.inter, a.gu_stride, tpb, a.tokens, a.norm_w != nullptr))
    fail("one-token linear: W [", a.w.n, ", ", a.w.k, "] x ", a.slots, " slots (", a.inter, " input columns, ", tpb,
         " tiles per block, ", a.tokens, " tokens) is outside the kernel's shapes");
  if (a.norm_w && (a.slots != 1 || a.glu))
    fail("one-token linear: the fused norm takes one slot of a plain input");
  if (a.tokens > 1 && a.glu) fail("one-token linear: ", a.tokens, " tokens take a plain input, not slots");
  const int blocks = (a.w.n_tiles + tpb - 1) / tpb;
  if (a.route.ids && (blocks != 1 || a.accumulate || a.route.E != a.w.n || a.route.E > 16 * kWarps || !a.route.sigmoid))
    fail("one-token linear: routing needs every one of the ", a.w.n, " logits in one block (", blocks, " blocks)");
  const int total = a.slots * a.w.k_chunks;
  a.per = chunks_per_warp(total, tpb);
  a.gshift = 0;
  while ((32 << a.gshift) < a.w.group_size) ++a.gshift;
  const size_t smem = token_gemv_smem(total, a.tokens);  // one token <= 32.8 KB (<= 128 chunks)
  if (a.tokens == 1) {
    MMFP4_LAUNCH(unsigned(blocks), kWarps * kWarp, smem, s, token_gemv_kernel<1>)(a);
  } else {
    if (smem > (48 << 10)) smem_opt_in<token_gemv_kernel<kTokenGemvMaxTokens>>(int(kMaxSmem), "one-token linear");
    MMFP4_LAUNCH(unsigned(blocks), kWarps * kWarp, smem, s, token_gemv_kernel<kTokenGemvMaxTokens>)(a);
  }
  MMFP4_CUDA_LAUNCHED("one-token linear W [", a.w.n, ", ", a.w.k, "] x ", a.slots,
                      a.glu ? " slots (silu input)" : " slots", a.norm_w ? ", norm" : "",
                      a.route.ids ? ", routing" : "");
}

}  // namespace mmfp4::cuda
