// The backend interface: the only thing the model layer knows about hardware. A backend owns device memory,
// turns host weights into its own (repacked) form at load time, and runs ops on 2-D float32 activation views.
// Ops are asynchronous on devices that have queues; sync() waits. Implementations: backend/cpu (reference + fast
// kernels) and backend/cuda. Every op must handle every size from one row up (no tile-multiple assumptions).
//
// Axis convention everywhere: activations are [T, width] row-major (T = tokens of the batch); a linear weight is
// [N = out, K = in] and linear() computes y = x W^T, as nn.Linear.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "format/weight.h"

namespace mmfp4 {

// A 2-D float32 view on the backend's device: element (r, c) is data[r * stride + c].
struct Act {
  float* data = nullptr;
  int64_t rows = 0, cols = 0, stride = 0;

  Act() = default;
  Act(float* d, int64_t r, int64_t c) : data(d), rows(r), cols(c), stride(c) {}
  Act(float* d, int64_t r, int64_t c, int64_t s) : data(d), rows(r), cols(c), stride(s) {}
  // Columns [off, off + n) of every row.
  Act col_slice(int64_t off, int64_t n) const { return Act(data + off, rows, n, stride); }
  // Rows [off, off + n).
  Act row_slice(int64_t off, int64_t n) const { return Act(data + off * stride, n, cols, stride); }
  float* row(int64_t r) const { return data + r * stride; }
};

// A weight after upload: backend-specific layout. The model only passes it back to ops.
struct LinearWeight {
  virtual ~LinearWeight() = default;
  int64_t n = 0, k = 0;            // logical [out, in]
  WeightFormat format = WeightFormat::Dense;
  int hadamard_block = 0;          // > 0: linear() rotates its input block-wise (docs/format.md) unless told not to
  int64_t bytes = 0;               // device bytes held
  std::string name;
  // Keep float32-level products at every size (the MoE router: its top-k must not flip between a prefill and the
  // same tokens decoded one by one). Device backends otherwise compute large products (prefill) in bf16.
  bool exact = false;
};

// The routed experts of one MoE layer, stacked at load: gate/up [E, I, H], down [E, H, I].
struct ExpertWeights {
  virtual ~ExpertWeights() = default;
  int64_t n_experts = 0, hidden = 0, inter = 0;
  int64_t bytes = 0;
};

// A float32 vector on the device (norm weights, biases).
struct DeviceVector {
  float* data = nullptr;
  int64_t n = 0;
};

// Per-forward batch description, on the device (pointers valid until the next forward). Built by the model from
// the host-side Batch; the same for every layer.
struct BatchMeta {
  int64_t n_tokens = 0;
  const int32_t* tokens = nullptr;        // [T] token ids
  const int32_t* positions = nullptr;     // [T] position of each token in its sequence
  const int32_t* seq = nullptr;           // [T] sequence index of each token, in [0, n_seqs)
  const int32_t* slots = nullptr;         // [T] KV cache slot (block * block_size + offset) the token writes
  int64_t n_seqs = 0;
  const int32_t* block_tables = nullptr;  // [n_seqs, max_blocks] block ids of each sequence (-1 past its end)
  int64_t max_blocks = 0;
  int32_t max_position = 0;               // max over tokens of position (kernel sizing)
  // Host mirrors of the same arrays (the CPU backend reads these; device backends may plan with them).
  const int32_t* h_positions = nullptr;
  const int32_t* h_seq = nullptr;
  const int32_t* h_slots = nullptr;
  const int32_t* h_block_tables = nullptr;
};

// One layer of the paged KV cache (see kv/kv_cache.h): `data` is [n_blocks, block_size, width] in `dtype`.
// GQA layers store K then V for each token: width = 2 * kv_heads * head_dim ([K: kv_heads x D][V: kv_heads x D]).
// MLA layers store the normalised latent then the rotated rope key: width = kv_lora_rank + qk_rope_head_dim.
struct KVLayerView {
  void* data = nullptr;
  DType dtype = DType::F32;
  int64_t block_size = 0;
  int64_t width = 0;
};

// Rotary tables for positions [0, max_positions): cos/sin [max_positions, dim / 2], already multiplied by the
// YaRN attention factor.
struct RopeTable {
  const float* cos = nullptr;
  const float* sin = nullptr;
  int64_t max_positions = 0;
  int dim = 0;
  bool interleaved = false;  // pairs (2i, 2i+1) (MLA models) or (i, i + dim/2) (rotate-half)
};

struct RouterParams {
  bool sigmoid = false;          // sigmoid + correction bias + grouped top-k (deepseek/glm) or softmax (qwen3_moe)
  int64_t n_experts = 0, top_k = 0, n_group = 1, topk_group = 1;
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
  // >= 0: a shared expert run as one more routed expert (model/blocks/moe.cpp): every token also gets expert
  // shared_id with weight 1 in slot top_k, so ids/weights rows hold top_k + 1 entries (slots() of them).
  int64_t shared_id = -1;
  int64_t slots() const { return top_k + (shared_id >= 0 ? 1 : 0); }
};

// Sizes that bound every forward step of a loaded model (Backend::reserve_workspace).
struct WorkspacePlan {
  int64_t max_tokens = 0;   // tokens of the largest forward step
  int64_t max_context = 0;  // positions per sequence
  int64_t max_heads = 0;    // attention heads (query heads)
  int64_t max_kv_width = 0; // values per token and layer in the KV cache (bounds every head's width)
  int64_t max_top_k = 0;    // experts per token of the widest MoE layer (0: no MoE)
  bool mla = false;         // absorbed-MLA attention (the latent cache is shared by all heads)
  int64_t mla_rank = 0, mla_nope = 0, mla_v = 0;  // MLA: kv_lora_rank, qk_nope_head_dim, v_head_dim
};

// A recorded forward step (Backend::end_graph); owned by the caller, replayed with Backend::replay_graph.
struct StepGraph {
  virtual ~StepGraph() = default;
};

struct UploadOptions {
  bool keep_rotation_separate = false;  // reserved
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;           // "cpu (avx2, 2 threads)"
  virtual bool is_cpu() const = 0;

  // ---- memory (load time) ----
  // Device memory; throws mmfp4::Error naming `what`, the bytes asked for and the bytes free.
  virtual void* alloc(size_t bytes, const std::string& what) = 0;
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;    // host -> device
  virtual void download(void* dst, const void* src, size_t bytes) = 0;  // device -> host (waits)
  virtual size_t free_memory() const = 0;
  virtual DType kv_dtype() const = 0;               // element type of the KV cache on this backend

  // ---- weights (load time; weight surgery happens here, never in forward) ----
  virtual std::unique_ptr<LinearWeight> upload_linear(const HostWeight& w) = 0;
  // Stacks the experts' gate/up/down projections; each vector has n_experts weights of equal shape/format.
  virtual std::unique_ptr<ExpertWeights> upload_experts(const std::vector<HostWeight>& gate,
                                                        const std::vector<HostWeight>& up,
                                                        const std::vector<HostWeight>& down) = 0;
  DeviceVector upload_vector(const std::vector<float>& v, const std::string& what);

  // ---- ops ----
  // out[t] = table row ids[t] (table: a LinearWeight [vocab, hidden] in any format, dequantized).
  virtual void embed(const LinearWeight& table, const BatchMeta& b, Act out) = 0;
  // out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w   (w has x.cols entries; out may alias x)
  virtual void rmsnorm(Act x, const DeviceVector& w, float eps, Act out) = 0;
  // out = x W^T (+ out if accumulate). x.cols == W.k. A rotated W rotates x block-wise first unless
  // input_rotated (then x is already in the rotated domain).
  virtual void linear(Act x, const LinearWeight& w, Act out, bool accumulate, bool input_rotated = false) = 0;
  // In-place normalized Hadamard transform of each block of `block` columns of x (x.cols % block == 0).
  virtual void hadamard(Act x, int block) = 0;
  // Rotates columns [off, off + table.dim) of each of `heads` heads (head h starts at column h * head_stride) of
  // row t by position positions[t].
  virtual void rope(Act x, int64_t heads, int64_t head_stride, int64_t off, const RopeTable& table,
                    const BatchMeta& b) = 0;
  // out = silu(gate) * up
  virtual void silu_mul(Act gate, Act up, Act out) = 0;
  // x += y
  virtual void add(Act x, Act y) = 0;
  // x[r] += bias for every row
  virtual void add_bias(Act x, const DeviceVector& bias) = 0;
  // out[i] = x[rows[i]] (gathers the rows that need logits)
  virtual void gather_rows(Act x, const int32_t* rows_dev, int64_t n, Act out) = 0;

  // Attention over the paged cache. Tokens attend causally within their own sequence: token t sees cache positions
  // [0, positions[t]] of sequence seq[t]. The batch's own K/V must have been stored first.
  // GQA: k, v [T, kv_heads * D]; q, out [T, heads * D].
  virtual void kv_store(const KVLayerView& kv, Act k, Act v, const BatchMeta& b) = 0;
  virtual void attention(Act q, const KVLayerView& kv, int64_t heads, int64_t kv_heads, int64_t head_dim,
                         float scale, const BatchMeta& b, Act out) = 0;
  // MLA (absorbed; docs/models.md). Per-head tensors are viewed as [T * heads, width] with row r = (token
  // r / heads, head r % heads), which strided views of the q projection give without copies.
  // latent [T, R] and kpe [T, P] are stored per token; q_lat [T*heads, R] and q_pe [T*heads, P] score against
  // them with `scale`; out_lat [T*heads, R] = softmax-weighted latents.
  virtual void mla_store(const KVLayerView& kv, Act latent, Act kpe, const BatchMeta& b) = 0;
  // MLA's steps between kv_a and the attention, in this order: latent = rmsnorm(ckv[:, :R]) * norm_w; rope on
  // kpe = ckv[:, R:] and on the rope columns [q_off, q_off + table.dim) of each query head; latent Hadamard-rotated
  // by `had` (0: not); latent and kpe stored at the tokens' slots. The default runs the ops one by one; device backends
  // may do it in one launch (the same values).
  // (Defined here, inline: the CUDA library's override calls it and does not link backend.cpp.)
  virtual void mla_prepare(Act ckv, const DeviceVector& norm_w, float eps, Act latent, Act q, int64_t heads,
                           int64_t head_stride, int64_t q_off, int had, const RopeTable& table, const KVLayerView& kv,
                           const BatchMeta& b) {
    const int64_t R = latent.cols;
    Act kpe = ckv.col_slice(R, ckv.cols - R);
    rmsnorm(ckv.col_slice(0, R), norm_w, eps, latent);
    rope(kpe, 1, kpe.cols, 0, table, b);
    rope(q, heads, head_stride, q_off, table, b);
    if (had > 0) hadamard(latent, had);
    mla_store(kv, latent, kpe, b);
  }
  virtual void mla_attention(Act q_lat, Act q_pe, const KVLayerView& kv, int64_t heads, float scale,
                             const BatchMeta& b, Act out_lat) = 0;
  // The two halves of kv_b_proj [heads * (nope + v), R] applied per head, on its stored (possibly rotated) values:
  //   q_lat[t, h] = W_UK_h^T q_nope[t, h]   (W_UK_h = rows [h(nope+v), h(nope+v)+nope)); q_nope [T*heads, nope]
  //   out[t, h]   = W_UV_h o_lat[t, h]      (W_UV_h = the next v rows);                    out [T*heads, v]
  // With a rotated kv_b (W = W' H), these use W' directly: q_lat and o_lat live in the rotated latent domain, and
  // the model caches H c instead of c.
  virtual void mla_absorb_q(Act q_nope, const LinearWeight& kv_b, int64_t heads, int64_t nope, int64_t v,
                            Act q_lat) = 0;
  virtual void mla_expand_v(Act o_lat, const LinearWeight& kv_b, int64_t heads, int64_t nope, int64_t v,
                            Act out) = 0;

  // MoE. logits [T, E] (float32) -> ids [T, top_k], weights [T, top_k] (device buffers). bias may be null.
  virtual void moe_route(Act logits, const DeviceVector* bias, const RouterParams& p, int32_t* ids,
                         float* weights) = 0;
  // The router of a MoE block: logits = h w^T (w [E, hidden]), then moe_route. A backend may do both in one pass;
  // the default runs linear then moe_route.
  virtual void moe_router(Act h, const LinearWeight& w, Act logits, const DeviceVector* bias, const RouterParams& p,
                          int32_t* ids, float* weights) {
    linear(h, w, logits, false);
    moe_route(logits, bias, p, ids, weights);
  }
  // out[t] += sum_j weights[t, j] * expert_{ids[t, j]}(x[t]), tokens grouped by expert.
  virtual void moe_experts(Act x, const int32_t* ids, const float* weights, int64_t top_k, const ExpertWeights& ew,
                           Act out) = 0;

  virtual void sync() = 0;

  // ---- optional (defaults keep a backend correct without them) ----
  // Load-time sizing of the backend's own per-step scratch (split-K partials, MoE grouping, rotated inputs), so that
  // no op allocates during a request or inside a captured graph. The model calls it once its weights are uploaded.
  virtual void reserve_workspace(const WorkspacePlan& plan) {}

  // Greedy sampling on the device: ids[r] = index of the largest value of row r of x (ties to the lowest index);
  // ids is device memory with x.rows entries. The default downloads x, computes on the host and uploads ids.
  virtual void argmax_rows(Act x, int32_t* ids) {
    std::vector<float> row(size_t(x.cols));
    std::vector<int32_t> out(size_t(x.rows));
    for (int64_t r = 0; r < x.rows; ++r) {
      download(row.data(), x.row(r), row.size() * sizeof(float));
      int64_t best = 0;
      for (int64_t c = 1; c < x.cols; ++c)
        if (row[size_t(c)] > row[size_t(best)]) best = c;
      out[size_t(r)] = int32_t(best);
    }
    if (!out.empty()) upload(ids, out.data(), out.size() * sizeof(int32_t));
  }

  // Streaming read bandwidth of the memory the backend computes from, in GB/s, measured now over `bytes` (for
  // benchmarks: the ceiling decode is read against). 0: the backend computes in host memory, which the caller
  // measures itself (cpu/membw.h). Takes and frees its buffer: never call it while serving.
  virtual double device_read_gbs(size_t bytes) { return 0; }

  // Step graphs (CUDA graphs): the ops issued between begin_graph() and end_graph() are recorded, not run, and
  // replay_graph() runs them again with whatever the device buffers they read hold then. A backend that says
  // supports_graphs() reads every per-step value (tokens, positions, seq, slots, block tables, expert ids) from
  // device memory, never from the host mirrors or host arguments other than sizes; and treats a token whose slot
  // is negative as padding: its K/V is not stored (its outputs are computed and ignored).
  virtual bool supports_graphs() const { return false; }
  virtual void begin_graph() {}
  virtual std::unique_ptr<StepGraph> end_graph() { return nullptr; }
  virtual void replay_graph(const StepGraph& g) {}
};

// The backend for `device` ("cpu", "cuda", "auto"); throws when unavailable. threads applies to the CPU.
std::unique_ptr<Backend> make_backend(const std::string& device, int threads = 0);
bool cuda_available();

}  // namespace mmfp4
