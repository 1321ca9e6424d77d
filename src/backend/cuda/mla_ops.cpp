// Checked host wrappers of the MLA kernels (mla_attention.cu, mla_projections.cu, and the
// grouped GEMM for the per-head products).
#include <algorithm>

#include "backend/cuda/check.h"
#include "backend/cuda/grouped_gemv.h"
#include "backend/cuda/launch.h"
#include "core/error.h"

namespace dsi::cuda {

namespace {

bool is_act(DType t) { return t == DType::f32 || t == DType::bf16; }

void check_kv_b(const DeviceWeight& w, int n_heads, int dn, int dv, int r, const char* op) {
  if (w.rows != int64_t(n_heads) * (dn + dv) || w.cols != r)
    fail("{}: kv_b is [{}, {}], expected [{}, {}]", op, w.rows, w.cols, int64_t(n_heads) * (dn + dv), r);
  if (w.data == nullptr || w.ld < w.cols) fail("{}: kv_b has no data or a row stride {} < {}", op, w.ld, w.cols);
  if (w.dtype != DType::f32 && w.dtype != DType::bf16 && w.dtype != DType::f8_e4m3)
    fail("{}: kv_b is {}, expected f32, bf16 or f8_e4m3", op, dtype_name(w.dtype));
  if (w.dtype == DType::f8_e4m3 && (w.scale == nullptr || w.block_rows < 1 || w.block_cols < 1))
    fail("{}: an FP8 kv_b needs its block scales", op);
}

// kv_b's head slices as the grouped GEMM's weights: head h's rows start (dn + dv) h rows in
// (plus `first_row`, W_UV's place inside a head), and the scale grid is the whole matrix's.
GroupedWeight head_slices(const DeviceWeight& w, int dn, int dv, int64_t first_row, bool k_major) {
  GroupedWeight g;
  g.data = static_cast<const char*>(w.data) + first_row * w.ld * int64_t(dtype_size(w.dtype));
  g.dtype = w.dtype;
  g.ld = w.ld;
  g.group_stride = int64_t(dn + dv) * w.ld;
  g.k_major = k_major;
  g.scale = w.scale;
  g.scale_ld = w.scale_ld;
  g.scale_group_stride = 0;
  g.row_offset = w.row_offset + first_row;
  g.group_row_step = dn + dv;
  g.block_rows = w.block_rows;
  g.block_cols = w.block_cols;
  return g;
}

// The heads (groups) of g as one strided-batch cuBLASLt product: bf16 operands, W_g [n_cols,
// depth] or, k-major, stored [depth, n_cols] (a transposed weight).
void per_head_cublas(GemmContext& ctx, const GroupedGemmParams& g, cudaStream_t stream) {
  GemmParams p;
  void* w = const_cast<void*>(g.w.data);
  p.x = Tensor{const_cast<void*>(g.a), DType::bf16, g.n_rows, g.depth, g.a_ld};
  p.w = g.w.k_major ? Tensor{w, DType::bf16, g.depth, g.n_cols, g.w.ld} : Tensor{w, DType::bf16, g.n_cols, g.depth, g.w.ld};
  p.w_transposed = g.w.k_major;
  p.y = Tensor{g.y, DType::bf16, g.n_rows, g.n_cols, g.y_ld};
  p.batch = g.n_groups;
  p.x_batch_stride = g.a_group_cols;
  p.w_batch_stride = g.w.group_stride;
  p.y_batch_stride = g.y_group_cols;
  gemm(ctx, p, stream);
}

// The per-head product as the skinny kernel where it takes it (decode, up to the skinny
// limits), else one batched cuBLASLt call for bf16, else the tiled GEMM.
void per_head_product(const GroupedGemmParams& g, SkinnyKernel k, GemmContext* ctx, cudaStream_t stream) {
  const bool batched = ctx && g.act_dtype == DType::bf16 && g.w.dtype == DType::bf16;
  const int64_t limit = g.w.k_major ? skinny_limits(k).kmajor_rows
                        : batched   ? std::min(skinny_limits(k).head_rows, kMlaSkinnyExpandRows)
                                    : skinny_limits(k).head_rows;
  if (batched && g.n_rows > limit) {
    per_head_cublas(*ctx, g, stream);
    return;
  }
  if (g.act_dtype == DType::bf16 && g.n_rows <= limit) {
    GroupedGemvParams q;
    q.gemm = g;
    q.y_dtype = g.act_dtype;
    pick_skinny_kernel(q, k);
    if (grouped_gemv_supported(q)) {
      grouped_gemv(q, stream);
      return;
    }
  }
  grouped_gemm(g, stream);
}

}  // namespace

int64_t mla_attention_scratch_floats(const MlaAttentionParams& p) {
  if (p.n_splits <= 1) return 0;
  return int64_t(p.n_splits) * p.n_tokens * p.n_heads * (p.kv_lora_rank + 2);
}

int mla_attention_pick_splits(int n_tokens, int n_heads, int max_context, int n_multiprocessors) {
  // A split is at least one 32-row tile of the kernel (mla_attention.cu's kRowsPerTile).
  constexpr int kHeadsPerCta = 16, kMinRowsPerSplit = 32, kMaxSplits = 64;
  const int64_t ctas = int64_t(n_tokens) * ((n_heads + kHeadsPerCta - 1) / kHeadsPerCta);
  const int64_t target = 2 * int64_t(n_multiprocessors);
  if (ctas <= 0 || ctas >= target) return 1;
  // Whole waves: a split more than fit leaves a second, mostly idle wave (64 x 4,096 tokens of
  // 16 heads: 0.120 ms at 4 splits, 0.174 at 5; docs/design/cuda_notes.md, session 7).
  const int64_t by_work = target / ctas;
  const int64_t by_context = std::max(1, (max_context + kMinRowsPerSplit - 1) / kMinRowsPerSplit);
  return int(std::clamp<int64_t>(std::min(by_work, by_context), 1, kMaxSplits));
}

int mla_attention_pick_heads_per_warp(int n_tokens, int n_heads, int n_splits, int n_multiprocessors) {
  constexpr int kHeadsPerCta = 16;
  const int64_t ctas = int64_t(n_tokens) * ((n_heads + kHeadsPerCta - 1) / kHeadsPerCta) * n_splits;
  return ctas < n_multiprocessors ? 1 : 2;
}

void mla_attention(const MlaAttentionParams& p, cudaStream_t stream) {
  const char* op = "cuda::mla_attention";
  if (!is_act(p.act_dtype) || !is_act(p.kv_dtype))
    fail("{}: activations are {} and the cache {}; each must be f32 or bf16", op, dtype_name(p.act_dtype),
         dtype_name(p.kv_dtype));
  const int D = p.kv_lora_rank + p.rope_dim;
  if (p.n_heads < 1 || p.kv_lora_rank < 1 || p.rope_dim < 0 || D > 576 || p.kv_lora_rank > 512)
    fail("{}: {} heads with r = {}, dr = {}: the kernels take r <= 512 and r + dr <= 576", op, p.n_heads,
         p.kv_lora_rank, p.rope_dim);
  if (p.heads_per_warp != 1 && p.heads_per_warp != 2) fail("{}: {} heads a warp; the kernel takes 1 or 2", op, p.heads_per_warp);
  if (p.n_tokens < 0 || p.n_seqs < 0 || p.block_size < 1 || p.n_splits < 1 || p.n_splits > 65535)
    fail("{}: bad sizes: {} tokens, {} sequences, block size {}, {} splits", op, p.n_tokens, p.n_seqs, p.block_size,
         p.n_splits);
  if (p.n_tokens == 0) return;
  if (!p.q_full || !p.kv_pool || !p.o_latent || (p.n_seqs > 0 && (!p.seq_first_row || !p.seq_n_tokens ||
                                                                  !p.seq_n_cached || !p.block_table)))
    fail("{}: a device pointer is missing", op);
  if (p.q_ld < int64_t(p.n_heads) * D || p.o_ld < int64_t(p.n_heads) * p.kv_lora_rank || p.kv_ld < D)
    fail("{}: row strides q {}, o {}, kv {} are narrower than their rows", op, p.q_ld, p.o_ld, p.kv_ld);
  if (p.n_splits > 1 && p.split_scratch == nullptr) fail("{}: {} splits need split_scratch", op, p.n_splits);
  DSI_CUDA_CHECK(launch_mla_attention(p, stream));
  DSI_CUDA_CHECK_LAUNCH(stream, "mla_attention");
}

void mla_absorb_query(const MlaAbsorbParams& p, cudaStream_t stream) {
  const char* op = "cuda::mla_absorb_query";
  if (!is_act(p.act_dtype)) fail("{}: activations are {}, expected f32 or bf16", op, dtype_name(p.act_dtype));
  check_kv_b(p.kv_b, p.n_heads, p.qk_nope_head_dim, p.v_head_dim, p.kv_lora_rank, op);
  const int64_t qd = p.qk_nope_head_dim + p.qk_rope_head_dim, D = p.kv_lora_rank + p.qk_rope_head_dim;
  if (p.q_ld < p.n_heads * qd || p.q_full_ld < p.n_heads * D)
    fail("{}: row strides q {} / q_full {} are narrower than their rows", op, p.q_ld, p.q_full_ld);
  if (p.n_tokens == 0) return;
  GroupedGemmParams g;
  g.act_dtype = p.act_dtype;
  g.n_groups = p.n_heads;
  g.n_cols = p.kv_lora_rank;
  g.depth = p.qk_nope_head_dim;
  g.n_rows = p.n_tokens;
  g.a = p.q;
  g.a_ld = p.q_ld;
  g.a_group_cols = qd;
  g.y = p.q_full;
  g.y_ld = p.q_full_ld;
  g.y_group_cols = D;
  // W_UK_h is [dn, r] and q_full's latent part is W_UK_h^T q_nope: K runs along its rows.
  g.w = head_slices(p.kv_b, p.qk_nope_head_dim, p.v_head_dim, 0, true);
  per_head_product(g, p.skinny, p.gemm, stream);
  DSI_CUDA_CHECK(launch_copy_rope_part(p, stream));
  DSI_CUDA_CHECK_LAUNCH(stream, "mla_absorb_query rope copy");
}

void mla_expand_output(const MlaExpandParams& p, cudaStream_t stream) {
  const char* op = "cuda::mla_expand_output";
  if (!is_act(p.act_dtype)) fail("{}: activations are {}, expected f32 or bf16", op, dtype_name(p.act_dtype));
  check_kv_b(p.kv_b, p.n_heads, p.qk_nope_head_dim, p.v_head_dim, p.kv_lora_rank, op);
  if (p.o_latent_ld < int64_t(p.n_heads) * p.kv_lora_rank || p.o_ld < int64_t(p.n_heads) * p.v_head_dim)
    fail("{}: row strides o_latent {} / o {} are narrower than their rows", op, p.o_latent_ld, p.o_ld);
  if (p.n_tokens == 0) return;
  GroupedGemmParams g;
  g.act_dtype = p.act_dtype;
  g.n_groups = p.n_heads;
  g.n_cols = p.v_head_dim;
  g.depth = p.kv_lora_rank;
  g.n_rows = p.n_tokens;
  g.a = p.o_latent;
  g.a_ld = p.o_latent_ld;
  g.a_group_cols = p.kv_lora_rank;
  g.y = p.o;
  g.y_ld = p.o_ld;
  g.y_group_cols = p.v_head_dim;
  g.w = head_slices(p.kv_b, p.qk_nope_head_dim, p.v_head_dim, p.qk_nope_head_dim, false);
  per_head_product(g, p.skinny, p.gemm, stream);
}

}  // namespace dsi::cuda
