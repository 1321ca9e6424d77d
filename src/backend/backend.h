#pragma once
// The op interface the model is written against, once, for every backend (docs/design/backend.md
// is the contract). The CPU backend is the float32 reference; a CUDA backend implements the same
// ops on device memory, stream-ordered, with no host round trip inside a step.
//
// - Memory: every Tensor/Weight an op sees lives in memory this backend owns (alloc, upload,
//   alloc_staging). Views are non-owning; a backend keeps what it allocated or uploaded alive
//   until it is destroyed.
// - Ops are called through the shared op layer (backend/ops.h), which checks shapes and dtypes
//   once with named errors; a backend's op may assume valid arguments.
// - Per-step metadata (token ids, positions, KV slots, block tables, ...) is read from the
//   StepContext (backend/step_context.h), uploaded and validated once per step, never from
//   host spans.
// - Ops never allocate device memory: outputs and scratch come from the caller's persistent
//   workspace, so a step's launches can be captured by a CUDA graph.
// - Threads: one thread at a time calls a backend (the engine thread). Ops are asynchronous on
//   the backend's stream; copy_to_host and synchronize wait for them.
// An op may be given its output aliased to an input only where its comment says so.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/sampling.h"
#include "core/tensor.h"

namespace dsi {

struct StepContext;

// Memory allocated by a backend; the view stays valid while any copy of the Buffer lives.
struct Buffer {
  Tensor t;
  std::shared_ptr<void> owner;
};

struct MlpWeights {
  Weight gate;  // [inter, hidden]
  Weight up;    // [inter, hidden]
  Weight down;  // [hidden, inter]
  // [2 inter, hidden]: gate then up, where the backend stacks them (Backend::upload_stacked);
  // gate and up are then views of its rows.
  std::optional<Weight> gate_up;
};

// One projection of every routed expert of a layer, addressable by expert index: expert e's
// matrix is experts[e], [rows, cols]. A backend that stacks at upload (CUDA: one allocation,
// one grouped GEMM launch) also sets `stacked` ([n_experts * rows, cols], expert e at rows
// [e * rows, (e + 1) * rows)) and, for FP8, `stacked_scale` ([n_experts * scale_rows,
// scale_cols], each expert's own 128x128 block scales); experts[e] are then views into it.
// The CPU backend leaves `stacked` empty and keeps each expert where the checkpoint put it.
struct ExpertWeight {
  std::vector<Weight> experts;
  Tensor stacked;
  Tensor stacked_scale;
  int n_experts() const { return int(experts.size()); }
  int64_t rows() const { return experts.empty() ? 0 : experts[0].rows(); }
  int64_t cols() const { return experts.empty() ? 0 : experts[0].cols(); }
};

// The routed experts of one MoE layer.
struct ExpertMlpWeights {
  ExpertWeight gate;  // n_experts x [moe_inter, hidden]
  ExpertWeight up;    // n_experts x [moe_inter, hidden]
  ExpertWeight down;  // n_experts x [hidden, moe_inter]
};

// The paged MLA cache of all layers: per token and layer one row of kv_dim = kv_lora_rank +
// qk_rope_head_dim values (the normalised latent c, then the roped shared key k_pe), in the
// pool's dtype (the KV dtype: f32 on the CPU, bf16 on a GPU).
struct KvCacheView {
  Tensor pool;  // [n_layers * n_blocks * block_size, kv_dim], layer-major
  int n_layers = 0;
  int64_t n_blocks = 0;
  int block_size = 0;
  Tensor layer(int l) const { return pool.slice_rows(int64_t(l) * n_blocks * block_size, n_blocks * block_size); }
};

struct MlaShape {
  int n_heads;
  int64_t qk_nope_head_dim;  // dn
  int64_t qk_rope_head_dim;  // dr
  int64_t v_head_dim;        // dv
  int64_t kv_lora_rank;      // r
  float softmax_scale;
  int64_t q_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  int64_t latent_dim() const { return kv_lora_rank + qk_rope_head_dim; }  // = kv_dim
};

// Where rotary dims sit in a row: dims [rope_offset, rope_offset + 2 * inv_freq.cols) of each of
// n_heads heads, head h starting at column h * head_stride.
struct RopeParams {
  int n_heads;
  int64_t head_stride;
  int64_t rope_offset;
  Tensor inv_freq;         // f32 [1, rope_dim / 2], backend memory (MATH.md "Rotary embedding")
  float attention_factor;  // multiplies cos and sin
};

// The norm and rotations of ops::mla_rope_norm_cache.
struct MlaRopeNorm {
  Tensor kv_norm;  // f32 [1, kv_lora_rank]: the latent's rms_norm weight
  float eps;
  RopeParams q_rope, kv_rope;
};

enum class RoutingScore { routing_score_softmax, routing_score_sigmoid };
enum class RoutingGroupScore {
  routing_group_none,     // greedy: top-k over all experts
  routing_group_max,      // group_limited_greedy: a group scores its best expert
  routing_group_top2_sum  // noaux_tc: a group scores the sum of its two best (biased) experts
};

// MoE expert choice (MATH.md "MoE").
struct RoutingParams {
  int n_experts;
  int top_k;
  int n_group;
  int topk_group;
  RoutingScore score;
  RoutingGroupScore group_score;
  bool use_score_bias;  // noaux_tc: choose by score + bias, weigh by score
  bool normalize;       // divide the chosen weights by their sum (+1e-20)
  float scaling;        // routed_scaling_factor
};

// Memory of the device a backend computes on (a GPU's HBM; the host's RAM for the CPU).
struct DeviceMemory {
  int64_t total = 0;  // bytes
  int64_t free = 0;   // bytes free now, for every process
  int64_t used_by_backend = 0;  // bytes this backend took since it was created (GPU: free then - free now)
};

// Device time of one kind of op over a timed stretch (Backend::end_op_timing).
struct OpTiming {
  std::string op;  // "linear:gemv", "mla_attention", ...
  int64_t calls = 0;
  double seconds = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu", "cuda:0"
  // The dtypes this backend was created with (backend_factory.h): activations between ops
  // (GEMMs accumulate in f32 whatever they are) and the KV cache's rows.
  virtual DType activation_dtype() const = 0;
  virtual DType kv_dtype() const = 0;
  virtual DeviceMemory device_memory() = 0;
  // The stream the ops run on, for a library that enqueues work in their order (NCCL: the
  // model's collectives on GPU memory, parallel/nccl_collectives.h): a cudaStream_t on CUDA,
  // whose GPU the call makes current on the calling thread, as the entry points that move
  // memory do; null on a backend without one (the CPU).
  virtual void* native_stream() { return nullptr; }

  // ---- memory (all of it owned by the backend, released when it is destroyed or, for alloc,
  // when the last copy of the Buffer goes)
  // Uninitialised [rows, cols] of dtype in backend memory.
  virtual Buffer alloc(DType dtype, int64_t rows, int64_t cols) = 0;
  // Host memory the backend copies from fastest (CUDA: pinned); for per-step staging.
  virtual Buffer alloc_staging(DType dtype, int64_t rows, int64_t cols) = 0;
  // A weight into backend memory, once at load: w as is (bf16, f16, f32, or FP8 with its f32
  // block scales kept as FP8 + scales). `host_owner` keeps the host memory alive; a backend that
  // computes on host memory (CPU) may return views of it and keep `host_owner` instead of copying.
  virtual Weight upload(const Weight& host, const std::shared_ptr<void>& host_owner) = 0;
  // Weights that multiply the same input (q and kv_a; gate and up), stacked by rows in order
  // (equal column counts), so that one product computes them all. A backend that gains from
  // fewer, larger products (CUDA) returns the stack; the default keeps the parts apart.
  virtual std::optional<Weight> upload_stacked(std::span<const Weight> host, const std::shared_ptr<void>& host_owner) {
    (void)host;
    (void)host_owner;
    return std::nullopt;
  }
  // A float32 vector [1, n] (norm weights, the routing score bias), kept in f32 on every backend.
  virtual Tensor upload_vector(const Tensor& host, const std::shared_ptr<void>& host_owner) = 0;
  // One projection of all routed experts of a layer (n_experts host matrices of equal shape and
  // dtype); a GPU stacks them into one allocation (ExpertWeight).
  virtual ExpertWeight upload_experts(std::span<const Weight> host, const std::shared_ptr<void>& host_owner) = 0;
  // Copies dst.rows x dst.cols packed host elements of dst.dtype into dst (which may have a row
  // stride), stream-ordered: src must stay unchanged until the next synchronize or
  // copy_to_host (use alloc_staging memory). StepContext::begin uploads a step this way.
  virtual void copy_from_host(const void* src, Tensor dst) = 0;
  // Copies src (its own dtype, rows packed) to host; waits for the ops before it.
  virtual void copy_to_host(const Tensor& src, void* dst) = 0;
  virtual void synchronize() = 0;  // waits for every op issued so far

  // ---- measurement (benchmarks; a backend may have none: the CPU's returns nothing)
  // Times every op from here to end_op_timing, which waits for them and returns the device
  // time per op kind. A GPU holds its queue back at the start, so the times are the ops' own
  // and not the host's launch gaps. Not for serving: it costs a synchronisation.
  virtual void begin_op_timing() {}
  virtual std::vector<OpTiming> end_op_timing() { return {}; }

  // ---- step recording (CUDA graphs; a backend without them runs every step as it comes)
  // Whether run_recorded replays recordings (CUDA: graphs are on unless --enforce-eager).
  virtual bool records_steps() const { return false; }
  // Runs `ops` (a step's device work: no host copies or synchronisation inside) as the
  // recording kept under `key`. Every op's arguments (sizes, buffer addresses) must be a
  // function of the key alone, and the data they read must sit at the same addresses each
  // time (StepContext and Workspace guarantee it). The first call with a key runs `ops`
  // eagerly (first use loads kernels and GEMM plans), the second records and replays them,
  // later ones replay; ops that cannot be recorded make that key eager from then on.
  virtual void run_recorded(uint64_t key, const std::function<void()>& ops) {
    (void)key;
    ops();
  }
  // How many recordings are kept (CUDA graphs captured so far).
  virtual int64_t n_recorded() const { return 0; }

  // ---- sampling on the device (engine/sampling_rows.h prepares the records, backend/sampling.h
  // defines them). sample() chooses a token for rows [0, rows.size()) of `logits` (f32, this
  // backend's memory, [>= rows.size(), vocab]; used as scratch) by the same rules and
  // arithmetic as the CPU sampler, and returns once `results` holds every row's outcome.
  // Called outside recorded steps. A backend without one (the CPU: the engine samples the host
  // logits itself) returns false from has_device_sampler and throws from sample.
  virtual bool has_device_sampler() const { return false; }
  virtual void sample(const Tensor& logits, std::span<const sampling::SamplingRow> rows,
                      std::span<const sampling::SamplingPenalty> penalties,
                      std::span<sampling::SamplingResult> results);

  // ---- ops (see backend/ops.h for the shapes; the op layer checks them before calling)
  virtual void embedding(const Weight& table, const StepContext& ctx, Tensor out) = 0;
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) = 0;
  virtual void linear(const Tensor& x, const Weight& w, Tensor out) = 0;
  virtual void rope(Tensor x, const RopeParams& rope, const StepContext& ctx) = 0;
  virtual void silu_mul(const Tensor& gate, const Tensor& up, Tensor out) = 0;
  virtual void add(Tensor x, const Tensor& y) = 0;
  // x += y, then out = rms_norm(x): one kernel where the backend has it (CUDA), else the two ops.
  virtual void add_rms_norm(Tensor x, const Tensor& y, const Tensor& weight, float eps, Tensor out) {
    add(x, y);
    rms_norm(x, weight, eps, out);
  }
  virtual void gather_rows(const Tensor& x, const Tensor& rows, Tensor out) = 0;

  virtual void kv_cache_write(const KvCacheView& cache, int layer, const Tensor& kv, const StepContext& ctx) = 0;
  // The four ops in one where the backend fuses them (CUDA), else one after another.
  virtual void mla_rope_norm_cache(Tensor q, Tensor kv, const MlaRopeNorm& p, const KvCacheView& cache, int layer,
                                   const StepContext& ctx) {
    const Tensor latent = kv.slice_cols(0, p.kv_norm.numel());
    rms_norm(latent, p.kv_norm, p.eps, latent);
    rope(q, p.q_rope, ctx);
    rope(kv, p.kv_rope, ctx);
    kv_cache_write(cache, layer, kv, ctx);
  }
  virtual void mla_absorb_query(const Tensor& q, const Weight& kv_b, const MlaShape& shape, Tensor q_full) = 0;
  virtual void mla_attention(const Tensor& q_full, const KvCacheView& cache, int layer, const StepContext& ctx,
                             const MlaShape& shape, Tensor o_latent) = 0;
  virtual void mla_expand_output(const Tensor& o_latent, const Weight& kv_b, const MlaShape& shape, Tensor o) = 0;

  // MoE as four ops: expert parallelism's all-to-all goes between dispatch and the grouped
  // GEMM, and between the grouped GEMM and combine.
  virtual void moe_route(const Tensor& logits, const Tensor& score_bias, const RoutingParams& params,
                         Tensor expert_ids, Tensor expert_weights, Tensor expert_counts) = 0;
  virtual void moe_dispatch(const Tensor& x, const Tensor& expert_ids, const Tensor& expert_counts, Tensor x_sorted,
                            Tensor expert_offsets, Tensor row_map) = 0;
  virtual void moe_grouped_mlp(const Tensor& x_sorted, const Tensor& expert_offsets, const ExpertMlpWeights& experts,
                               Tensor gate, Tensor up, Tensor y_sorted) = 0;
  virtual void moe_combine(const Tensor& y_sorted, const Tensor& row_map, const Tensor& expert_ids,
                           const Tensor& expert_weights, const Tensor& shared, Tensor out) = 0;
};

}  // namespace dsi
