// CudaBackend's ops: each maps the op layer's (already checked) tensors and the step context's
// device arrays onto one kernel's params (elementwise.h, gemm.h, mla_*.h, moe.h).
#include <algorithm>
#include <bit>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/expert_gemm.h"
#include "backend/cuda/fp8.h"
#include "backend/cuda/grouped_gemv.h"
#include "backend/cuda/mla_attention.h"
#include "backend/cuda/mla_projections.h"
#include "backend/cuda/mla_rope_norm_cache.h"
#include "backend/cuda/moe.h"
#include "backend/step_context.h"
#include "core/error.h"
#include "core/int_math.h"

namespace dsi::cuda {

namespace {

template <class T>
const T* ptr(const Tensor& t) {
  return static_cast<const T*>(t.data);
}
template <class T>
T* mut(const Tensor& t) {
  return static_cast<T*>(t.data);
}

DeviceWeight device_weight(const Weight& w) {
  DeviceWeight d;
  d.data = w.w.data;
  d.dtype = w.w.dtype;
  d.rows = w.rows();
  d.cols = w.cols();
  d.ld = w.w.row_stride;
  if (w.quantized()) {
    d.scale = ptr<float>(w.scale);
    d.scale_ld = w.scale.row_stride;
    d.row_offset = w.row_offset;
    d.block_rows = w.block_rows;
    d.block_cols = w.block_cols;
  }
  return d;
}

// The stacked experts of one projection as the grouped GEMM reads them.
GroupedWeight grouped_weight(const ExpertWeight& e) {
  if (!e.stacked.data) fail("cuda moe_grouped_mlp: the experts were not uploaded by the CUDA backend (not stacked)");
  GroupedWeight g;
  g.data = e.stacked.data;
  g.dtype = e.stacked.dtype;
  g.ld = e.stacked.row_stride;
  g.group_stride = e.rows() * e.stacked.row_stride;
  if (e.stacked_scale.data) {
    const Weight& first = e.experts[0];
    g.scale = ptr<float>(e.stacked_scale);
    g.scale_ld = e.stacked_scale.row_stride;
    g.scale_group_stride = first.scale.rows * e.stacked_scale.row_stride;
    g.row_offset = first.row_offset;
    g.block_rows = first.block_rows;
    g.block_cols = first.block_cols;
  }
  return g;
}

// y = x W^T as the one-group skinny problem.
GroupedGemvParams dense_gemv(const Tensor& x, const Tensor& w, const Tensor& y, SkinnyKernel k) {
  GroupedGemvParams q;
  pick_skinny_kernel(q, k);
  GroupedGemmParams& g = q.gemm;
  g.act_dtype = x.dtype;
  g.n_groups = 1;
  g.n_rows = x.rows;
  g.n_cols = w.rows;
  g.depth = w.cols;
  g.a = x.data;
  g.a_ld = x.row_stride;
  g.y = y.data;
  g.y_ld = y.row_stride;
  g.w.data = w.data;
  g.w.dtype = w.dtype;
  g.w.ld = w.row_stride;
  q.y_dtype = y.dtype;
  return q;
}

}  // namespace

void CudaBackend::embedding(const Weight& table, const StepContext& ctx, Tensor out) {
  const auto t = timed("embedding");
  cuda::embedding({table, ptr<int32_t>(ctx.token_ids), ctx.n_tokens(), out}, stream());
}

void CudaBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) {
  const auto t = timed("rms_norm");
  cuda::rms_norm({x, Tensor{}, weight, eps, out}, stream());
}

void CudaBackend::add_rms_norm(Tensor x, const Tensor& y, const Tensor& weight, float eps, Tensor out) {
  const auto t = timed("add_rms_norm");
  cuda::rms_norm({x, y, weight, eps, out}, stream());
}

void CudaBackend::linear(const Tensor& x, const Weight& w, Tensor out) {
  if (x.rows == 0) return;
  if (w.quantized() || w.w.dtype != x.dtype)
    fail("cuda linear: a {} weight{} with {} activations; CUDA weights are uploaded in the activation dtype",
         dtype_name(w.w.dtype), w.quantized() ? " with block scales" : "", dtype_name(x.dtype));
  if (x.rows <= linear_skinny_rows_) {
    const GroupedGemvParams q = dense_gemv(x, w.w, out, skinny_);
    if (grouped_gemv_supported(q)) {
      const auto t = timed("linear:gemv");
      grouped_gemv(q, stream());
      return;
    }
  }
  const auto t = timed("linear:cublas");
  GemmParams p;
  p.x = x;
  p.w = w.w;
  p.y = out;
  gemm(*gemm_, p, stream());
}

void CudaBackend::rope(Tensor x, const dsi::RopeParams& r, const StepContext& ctx) {
  const auto t = timed("rope");
  cuda::RopeParams p;
  p.x = x;
  p.n_heads = r.n_heads;
  p.head_stride = r.head_stride;
  p.rope_offset = r.rope_offset;
  p.positions = ptr<int32_t>(ctx.positions);
  p.inv_freq = ptr<float>(r.inv_freq);
  p.n_pairs = int(r.inv_freq.cols);
  p.attention_factor = r.attention_factor;
  cuda::rope(p, stream());
}

void CudaBackend::silu_mul(const Tensor& gate, const Tensor& up, Tensor out) {
  const auto t = timed("silu_mul");
  cuda::silu_mul({gate, up, out}, stream());
}

void CudaBackend::add(Tensor x, const Tensor& y) {
  const auto t = timed("add");
  cuda::add({x, y}, stream());
}

void CudaBackend::gather_rows(const Tensor& x, const Tensor& rows, Tensor out) {
  const auto t = timed("gather_rows");
  cuda::gather_rows({x, ptr<int32_t>(rows), out}, stream());
}

void CudaBackend::kv_cache_write(const KvCacheView& cache, int layer, const Tensor& kv, const StepContext& ctx) {
  const auto t = timed("kv_cache_write");
  cuda::kv_cache_write({cache.layer(layer), kv, ptr<int64_t>(ctx.kv_slots)}, stream());
}

void CudaBackend::mla_rope_norm_cache(Tensor q, Tensor kv, const MlaRopeNorm& r, const KvCacheView& cache, int layer,
                                      const StepContext& ctx) {
  const auto t = timed("mla_rope_norm_cache");
  MlaRopeNormCacheParams p;
  p.q = q;
  p.kv = kv;
  p.pool = cache.layer(layer);
  p.slots = ptr<int64_t>(ctx.kv_slots);
  p.kv_norm = ptr<float>(r.kv_norm);
  p.latent = r.kv_norm.numel();
  p.eps = r.eps;
  p.q_heads = r.q_rope.n_heads;
  p.q_head_stride = r.q_rope.head_stride;
  p.q_rope_offset = r.q_rope.rope_offset;
  p.kv_rope_offset = r.kv_rope.rope_offset;
  p.positions = ptr<int32_t>(ctx.positions);
  p.inv_freq = ptr<float>(r.q_rope.inv_freq);
  p.n_pairs = int(r.q_rope.inv_freq.cols);
  p.attention_factor = r.q_rope.attention_factor;
  if (r.kv_rope.inv_freq.data != r.q_rope.inv_freq.data || r.kv_rope.attention_factor != r.q_rope.attention_factor ||
      r.kv_rope.n_heads != 1)
    fail("cuda mla_rope_norm_cache: q and kv must share their rotation and kv have one head");
  cuda::mla_rope_norm_cache(p, stream());
}

void CudaBackend::mla_absorb_query(const Tensor& q, const Weight& kv_b, const MlaShape& s, Tensor q_full) {
  const auto t = timed("mla_absorb_query");
  MlaAbsorbParams p;
  p.act_dtype = q.dtype;
  p.n_tokens = int(q.rows);
  p.n_heads = s.n_heads;
  p.qk_nope_head_dim = int(s.qk_nope_head_dim);
  p.qk_rope_head_dim = int(s.qk_rope_head_dim);
  p.v_head_dim = int(s.v_head_dim);
  p.kv_lora_rank = int(s.kv_lora_rank);
  p.q = q.data;
  p.q_ld = q.row_stride;
  p.kv_b = device_weight(kv_b);
  p.q_full = q_full.data;
  p.q_full_ld = q_full.row_stride;
  p.skinny = skinny_;
  p.gemm = gemm_.get();
  cuda::mla_absorb_query(p, stream());
}

void CudaBackend::mla_attention(const Tensor& q_full, const KvCacheView& cache, int layer, const StepContext& ctx,
                                const MlaShape& s, Tensor o_latent) {
  if (mla_attention_by_products(q_full, cache, layer, ctx, s, o_latent)) return;
  const auto t = timed("mla_attention");
  const Tensor pool = cache.layer(layer);
  MlaAttentionParams p;
  p.act_dtype = q_full.dtype;
  p.kv_dtype = pool.dtype;
  p.q_full = q_full.data;
  p.q_ld = q_full.row_stride;
  p.kv_pool = pool.data;
  p.kv_ld = pool.row_stride;
  p.o_latent = o_latent.data;
  p.o_ld = o_latent.row_stride;
  p.seq_first_row = ptr<int32_t>(ctx.seq_first_row);
  p.seq_n_tokens = ptr<int32_t>(ctx.seq_n_tokens);
  p.seq_n_cached = ptr<int32_t>(ctx.seq_n_cached);
  p.block_table = ptr<int32_t>(ctx.block_table);
  p.n_seqs = int(ctx.n_seqs());
  p.block_table_ld = int(ctx.limits.max_blocks_per_seq);
  p.n_tokens = int(q_full.rows);
  p.n_heads = s.n_heads;
  p.kv_lora_rank = int(s.kv_lora_rank);
  p.rope_dim = int(s.qk_rope_head_dim);
  p.block_size = cache.block_size;
  p.softmax_scale = s.softmax_scale;
  // The context rounded up to a power of two: a decode step's CUDA graph is keyed by that
  // bucket (engine/step_padding.h), so every step it replays for picks the same split count.
  const int64_t context = int64_t(std::bit_ceil(uint64_t(std::max<int64_t>(ctx.host.max_context, 1))));
  p.n_splits = mla_attention_pick_splits(p.n_tokens, p.n_heads, int(std::min<int64_t>(context, INT32_MAX)),
                                         info().n_sms);
  p.heads_per_warp = mla_attention_pick_heads_per_warp(p.n_tokens, p.n_heads, p.n_splits, info().n_sms);
  p.tensor_cores = mla_tensor_cores_;
  if (p.n_splits > 1) {
    p.split_scratch = attention_scratch_.as<float>();
    // The picker's bound (cuda_backend.cpp) makes this hold; fall back to one split if not.
    if (mla_attention_scratch_floats(p) > attention_scratch_floats_) p.n_splits = 1;
  }
  cuda::mla_attention(p, stream());
}

void CudaBackend::mla_expand_output(const Tensor& o_latent, const Weight& kv_b, const MlaShape& s, Tensor o) {
  const auto t = timed("mla_expand_output");
  MlaExpandParams p;
  p.act_dtype = o_latent.dtype;
  p.n_tokens = int(o_latent.rows);
  p.n_heads = s.n_heads;
  p.qk_nope_head_dim = int(s.qk_nope_head_dim);
  p.v_head_dim = int(s.v_head_dim);
  p.kv_lora_rank = int(s.kv_lora_rank);
  p.o_latent = o_latent.data;
  p.o_latent_ld = o_latent.row_stride;
  p.kv_b = device_weight(kv_b);
  p.o = o.data;
  p.o_ld = o.row_stride;
  p.skinny = skinny_;
  p.gemm = gemm_.get();
  cuda::mla_expand_output(p, stream());
}

void CudaBackend::moe_route(const Tensor& logits, const Tensor& score_bias, const RoutingParams& params,
                            Tensor expert_ids, Tensor expert_weights, Tensor expert_counts) {
  const auto t = timed("moe_route");
  MoeRouteParams p;
  p.routing = params;
  p.n_tokens = int(logits.rows);
  p.logits = ptr<float>(logits);
  p.logits_ld = logits.row_stride;
  p.score_bias = params.use_score_bias ? ptr<float>(score_bias) : nullptr;
  p.expert_ids = mut<int32_t>(expert_ids);
  p.expert_weights = mut<float>(expert_weights);
  p.expert_counts = mut<int32_t>(expert_counts);
  cuda::moe_route(p, stream());
}

void CudaBackend::moe_dispatch(const Tensor& x, const Tensor& expert_ids, const Tensor& expert_counts, Tensor x_sorted,
                               Tensor expert_offsets, Tensor row_map) {
  const auto t = timed("moe_dispatch");
  MoeDispatchParams p;
  p.n_tokens = int(x.rows);
  p.top_k = int(expert_ids.cols);
  p.n_experts = int(expert_counts.cols);
  p.expert_ids = ptr<int32_t>(expert_ids);
  p.expert_offsets = mut<int32_t>(expert_offsets);
  p.row_map = mut<int32_t>(row_map);
  p.act_dtype = x.dtype;
  p.hidden = x.cols;
  p.x = x.data;
  p.x_ld = x.row_stride;
  p.x_sorted = x_sorted.data;
  p.x_sorted_ld = x_sorted.row_stride;
  cuda::moe_dispatch(p, stream());
}

// Prefill-sized MoE: from this many rows per expert on average, one cuBLASLt product per
// expert and matrix runs near the tensor-core peak, where the tiled grouped kernel reached 34
// TFLOP/s (49.8 ms a layer at 8 x 2048 tokens, V2-Lite, H200: docs/design/cuda_notes.md). It
// costs one copy of the expert offsets to the host (a stream synchronisation per layer) and
// three launches per expert with rows, which a prefill step of this size hides. FP8 experts
// are widened to bf16 one matrix at a time into a scratch first (the tiled kernel ran the V3
// slice's FP8 experts at 25 TFLOP/s, 113 ms a layer at 2 x 2048 tokens). CUTLASS's grouped
// GEMMs (moe_experts_grouped, opt-in until measured) replace both where they take the shapes.
constexpr int64_t kCublasRowsPerExpert = 32;

void CudaBackend::moe_experts_per_expert(const Tensor& x_sorted, const Tensor& expert_offsets,
                                         const ExpertMlpWeights& experts, Tensor gate, Tensor up, Tensor y_sorted) {
  const int n_experts = experts.gate.n_experts();
  std::vector<int32_t> off(size_t(n_experts) + 1);
  staging_->download(off.data(), expert_offsets.data, off.size() * sizeof(int32_t), stream());
  const bool fp8 = experts.gate.experts[0].quantized();
  if (fp8) {
    const int64_t elems = std::max(experts.gate.rows() * experts.gate.cols(), experts.down.rows() * experts.down.cols());
    if (expert_scratch_.size() < size_t(elems) * 2) expert_scratch_ = DeviceBuffer(size_t(elems) * 2);
  }
  // The weight as bf16: itself, or (FP8) widened into the scratch, which the product before
  // has finished reading by then (one stream).
  auto bf16_weight = [&](const Weight& w) {
    if (!fp8) return w.w;
    const Tensor s{expert_scratch_.data(), DType::bf16, w.rows(), w.cols(), w.cols()};
    cuda::dequantize_fp8({w, s}, stream());
    return s;
  };
  auto product = [&](const Tensor& x, const Weight& w, Tensor y, int e) {
    const int64_t m = off[size_t(e) + 1] - off[size_t(e)];
    GemmParams g;
    g.x = x.slice_rows(off[size_t(e)], m);
    g.w = bf16_weight(w);
    g.y = y.slice_rows(off[size_t(e)], m);
    gemm(*gemm_, g, stream());
  };
  for (int e = 0; e < n_experts; ++e) {
    if (off[size_t(e) + 1] <= off[size_t(e)]) continue;
    if (off[size_t(e) + 1] > x_sorted.rows || off[size_t(e)] < 0)
      fail("cuda moe_grouped_mlp: expert {} owns rows [{}, {}) of {}", e, off[size_t(e)], off[size_t(e) + 1], x_sorted.rows);
    product(x_sorted, experts.gate.experts[size_t(e)], gate, e);
    product(x_sorted, experts.up.experts[size_t(e)], up, e);
  }
  const int64_t rows = off.back();
  if (rows < 0 || rows > x_sorted.rows) fail("cuda moe_grouped_mlp: the experts own {} rows of {}", rows, x_sorted.rows);
  cuda::silu_mul({gate.slice_rows(0, rows), up.slice_rows(0, rows), gate.slice_rows(0, rows)}, stream());
  for (int e = 0; e < n_experts; ++e)
    if (off[size_t(e) + 1] > off[size_t(e)]) product(gate, experts.down.experts[size_t(e)], y_sorted, e);
}

bool CudaBackend::moe_experts_grouped(const Tensor& x_sorted, const Tensor& expert_offsets,
                                      const ExpertMlpWeights& experts, Tensor gate, Tensor up, Tensor y_sorted) {
  if (!expert_gemm_ || !expert_gemm_built()) return false;
  const ExpertWeight &wg = experts.gate, &wu = experts.up, &wd = experts.down;
  const bool fp8 = wg.stacked.dtype == DType::f8_e4m3;
  // Each stack contiguous; FP8: each expert's own 128 x 128 scale grid, rows of ceil(cols / 128)
  // (the K-major layout the kernel reads).
  auto stack_ok = [fp8](const ExpertWeight& w) {
    if (!w.stacked.data || w.stacked.dtype != (fp8 ? DType::f8_e4m3 : DType::bf16) || !w.stacked.contiguous() ||
        w.stacked.cols != w.cols())
      return false;
    if (!fp8) return true;
    const Weight& first = w.experts[0];
    return w.stacked_scale.data && first.block_rows == 128 && first.block_cols == 128 && first.row_offset == 0 &&
           w.stacked_scale.row_stride == ceil_div(w.cols(), 128) && first.scale.rows == ceil_div(w.rows(), 128);
  };
  if (!stack_ok(wg) || !stack_ok(wu) || !stack_ok(wd) || !up.contiguous()) return false;
  const int n_experts = wg.n_experts();
  const int64_t rows = x_sorted.rows, inter = wg.rows(), hidden = x_sorted.cols;
  auto matrix = [](const ExpertWeight& w, void* y) {
    ExpertGemmMatrix m{w.stacked.data, w.rows() * w.cols(), y};
    if (w.stacked_scale.data) {
      m.scale = ptr<float>(w.stacked_scale);
      m.scale_group_stride = w.experts[0].scale.rows * w.stacked_scale.row_stride;
    }
    return m;
  };
  ExpertGemmParams gate_up;
  gate_up.fp8 = fp8;
  gate_up.n_experts = n_experts;
  gate_up.row_offsets = ptr<int32_t>(expert_offsets);
  gate_up.x = x_sorted.data;
  gate_up.n = inter;
  gate_up.k = hidden;
  gate_up.mats[0] = matrix(wg, gate.data);
  gate_up.mats[1] = matrix(wu, up.data);
  gate_up.n_mats = 2;
  ExpertGemmParams down = gate_up;
  down.x = gate.data;
  down.n = hidden;
  down.k = inter;
  down.mats[0] = matrix(wd, y_sorted.data);
  down.n_mats = 1;
  // FP8 (W8A8): x_sorted and then the gated activations quantised per row and 128 columns into
  // one scratch: codes [rows, max k], then their scales [rows, max k / 128].
  const int64_t max_k = std::max(hidden, inter);
  Tensor x_codes, h_codes;
  float* scales = nullptr;
  if (fp8) {
    if (hidden % kFp8Group != 0 || inter % kFp8Group != 0) return false;
    const size_t code_bytes = size_t(round_up(rows * max_k, 256));
    const size_t need = code_bytes + size_t(rows * (max_k / kFp8Group)) * sizeof(float);
    if (expert_fp8_activations_.size() < need) expert_fp8_activations_ = DeviceBuffer(need);
    auto* base = static_cast<unsigned char*>(expert_fp8_activations_.data());
    scales = reinterpret_cast<float*>(base + code_bytes);
    x_codes = Tensor::matrix(base, DType::f8_e4m3, rows, hidden);
    h_codes = Tensor::matrix(base, DType::f8_e4m3, rows, inter);
    gate_up.x = x_codes.data;
    gate_up.x_scale = scales;
    down.x = h_codes.data;
    down.x_scale = scales;
  }
  if (!expert_gemm_takes(gate_up) || !expert_gemm_takes(down)) return false;
  const size_t need = expert_gemm_workspace_bytes(fp8, n_experts, 2, info_.n_sms);
  if (expert_gemm_workspace_.size() < need) expert_gemm_workspace_ = DeviceBuffer(need);
  void* ws = expert_gemm_workspace_.data();
  const size_t ws_bytes = expert_gemm_workspace_.size();
  const auto t = timed(fp8 ? "moe_experts:cutlass_fp8" : "moe_experts:cutlass");
  // One stream orders the reuses: the second launch's setup kernel rewrites the arrays after
  // the first GEMM, and the gated activations' codes overwrite x's after the first GEMM read
  // them. silu_mul also covers rows past the experts' last (dropped slots), never read.
  if (fp8) cuda::quantize_fp8({x_sorted, x_codes, scales, hidden / kFp8Group, 1}, stream());
  expert_gemm(gate_up, ws, ws_bytes, info_.n_sms, stream());
  cuda::silu_mul({gate.slice_rows(0, rows), up.slice_rows(0, rows), gate.slice_rows(0, rows)}, stream());
  if (fp8) cuda::quantize_fp8({gate.slice_rows(0, rows), h_codes, scales, inter / kFp8Group, 1}, stream());
  expert_gemm(down, ws, ws_bytes, info_.n_sms, stream());
  return true;
}

// The gate and up projections of the grouped kernels run fused (one launch writing
// silu(gate) * up into `gate`); only the per-expert cuBLASLt path uses `up` as scratch.
void CudaBackend::moe_grouped_mlp(const Tensor& x_sorted, const Tensor& expert_offsets,
                                  const ExpertMlpWeights& experts, Tensor gate, Tensor up, Tensor y_sorted) {
  if (!x_sorted.contiguous() || !gate.contiguous() || !y_sorted.contiguous())
    fail("cuda moe_grouped_mlp: x_sorted, gate and y_sorted must be contiguous");
  const DType wt = experts.gate.stacked.dtype;
  if (x_sorted.dtype == DType::bf16 && (wt == DType::bf16 || wt == DType::f8_e4m3) && up.data &&
      x_sorted.rows >= kCublasRowsPerExpert * experts.gate.n_experts()) {
    if (moe_experts_grouped(x_sorted, expert_offsets, experts, gate, up, y_sorted)) return;
    const auto t = timed("moe_experts:cublas");
    moe_experts_per_expert(x_sorted, expert_offsets, experts, gate, up, y_sorted);
    return;
  }
  MoeExpertsParams p;
  p.act_dtype = x_sorted.dtype;
  p.n_experts = experts.gate.n_experts();
  p.hidden = x_sorted.cols;
  p.inter = experts.gate.rows();
  p.n_rows = x_sorted.rows;
  p.expert_offsets = ptr<int32_t>(expert_offsets);
  p.x_sorted = x_sorted.data;
  p.gate = grouped_weight(experts.gate);
  p.up = grouped_weight(experts.up);
  p.down = grouped_weight(experts.down);
  p.h = gate.data;
  p.y_sorted = y_sorted.data;
  p.skinny = skinny_;
  const auto t = timed(skinny_moe_experts(p) ? "moe_experts:gemv" : "moe_experts:gemm");
  moe_experts(p, stream());
}

void CudaBackend::moe_combine(const Tensor& y_sorted, const Tensor& row_map, const Tensor& expert_ids,
                              const Tensor& expert_weights, const Tensor& shared, Tensor out) {
  const auto t = timed("moe_combine");
  MoeCombineParams p;
  p.act_dtype = y_sorted.dtype;
  p.n_tokens = int(out.rows);
  p.top_k = int(expert_ids.cols);
  p.hidden = out.cols;
  p.expert_ids = ptr<int32_t>(expert_ids);
  p.expert_weights = ptr<float>(expert_weights);
  p.row_map = ptr<int32_t>(row_map);
  p.y_sorted = y_sorted.data;
  p.shared_out = shared.data;
  p.shared_ld = shared.row_stride;
  p.out = out.data;
  p.out_ld = out.row_stride;
  cuda::moe_combine(p, stream());
}

}  // namespace dsi::cuda
