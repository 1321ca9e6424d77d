// CudaBackend's MLA attention for prefill steps by cuBLASLt products (mla_prefill.h): the
// sequence's cache rows gathered once, then per chunk of query tokens S = Q [c | k_pe]^T, the
// causal softmax, and O = P c, each chunk's products reaching only the keys its last token sees.
#include <algorithm>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/mla_prefill.h"
#include "backend/step_context.h"
#include "core/error.h"
#include "core/int_math.h"

namespace dsi::cuda {

namespace {

// A sequence takes the products when it brings at least this many new tokens: below, the
// products are too thin for cuBLASLt to beat the attention kernel.
constexpr int64_t kProductMinTokens = 64;
// Query tokens per chunk: the products of a chunk cover the keys up to its last token, so
// smaller chunks skip more of the causal upper triangle (8 chunks of 2048 tokens: 56% of the
// square), while (chunk x heads) rows still fill the GPU.
constexpr int64_t kChunkTokens = 256;

}  // namespace

bool CudaBackend::mla_attention_by_products(const Tensor& q_full, const KvCacheView& cache, int layer,
                                            const StepContext& ctx, const MlaShape& s, Tensor o_latent) {
  const int64_t heads = s.n_heads, width = s.kv_lora_rank + s.qk_rope_head_dim, r = s.kv_lora_rank;
  const Tensor pool = cache.layer(layer);
  if (q_full.dtype != DType::bf16 || pool.dtype != DType::bf16 || o_latent.dtype != DType::bf16) return false;
  // The heads as rows: each token's heads must be packed rows of q_full and o_latent.
  if (q_full.row_stride != heads * width || o_latent.row_stride != heads * r) return false;
  if ((width * 2) % 16 != 0 || pool.row_stride % 8 != 0 || r % 8 != 0) return false;
  const StepHost& h = ctx.host;
  for (int32_t n : h.seq_n_tokens)
    if (n < kProductMinTokens) return false;
  // Scratch: the gathered rows, then the chunk's f32 scores and bf16 probabilities.
  const int64_t max_ctx = h.max_context;
  const size_t rows_bytes = size_t(round_up(max_ctx * width * 2, 256));
  const size_t per_key_row = size_t(heads) * 6;  // per query token and key: f32 score + bf16 probability
  if (rows_bytes + per_key_row * size_t(round_up(max_ctx, 8)) > prefill_attention_scratch_.size()) return false;
  const int64_t chunk_cap =
      std::max<int64_t>(1, int64_t((prefill_attention_scratch_.size() - rows_bytes) / (per_key_row * size_t(round_up(max_ctx, 8)))));
  const int64_t chunk_tokens = std::min(kChunkTokens, chunk_cap);
  const auto t = timed("mla_attention:products");

  auto* base = static_cast<unsigned char*>(prefill_attention_scratch_.data());
  void* kv_rows = base;
  for (int64_t q = 0; q < ctx.n_seqs(); ++q) {
    const int64_t first = h.seq_first_row[size_t(q)], n_new = h.seq_n_tokens[size_t(q)];
    const int64_t n_cached = h.seq_n_cached[size_t(q)], n_ctx = n_cached + n_new;
    GatherKvParams g;
    g.pool = pool.data;
    g.pool_ld = pool.row_stride;
    g.block_table = static_cast<const int32_t*>(ctx.block_table.data) + q * ctx.block_table.row_stride;
    g.block_size = cache.block_size;
    g.n_rows = n_ctx;
    g.width = width;
    g.out = kv_rows;
    g.out_ld = width;
    DSI_CUDA_CHECK(launch_gather_kv_rows(g, stream()));
    for (int64_t c0 = 0; c0 < n_new; c0 += chunk_tokens) {
      const int64_t tokens = std::min(chunk_tokens, n_new - c0), rows = tokens * heads;
      const int64_t n_keys = n_cached + c0 + tokens;  // what the chunk's last token sees
      const int64_t s_ld = round_up(n_keys, 4), p_ld = round_up(n_keys, 8);
      auto* scores = reinterpret_cast<float*>(base + rows_bytes);
      auto* probs = reinterpret_cast<unsigned char*>(scores) + size_t(rows) * size_t(s_ld) * 4;
      const auto* q_rows = static_cast<const unsigned char*>(q_full.data) + size_t((first + c0) * heads * width) * 2;
      GemmParams qk;
      qk.x = Tensor::matrix(const_cast<unsigned char*>(q_rows), DType::bf16, rows, width);
      qk.w = Tensor::matrix(kv_rows, DType::bf16, n_keys, width);
      qk.y = Tensor{scores, DType::f32, rows, n_keys, s_ld};
      gemm(*gemm_, qk, stream());
      CausalSoftmaxParams sm;
      sm.s = scores;
      sm.s_ld = s_ld;
      sm.p = probs;
      sm.p_ld = p_ld;
      sm.n_rows = rows;
      sm.heads = int(heads);
      sm.first_pos = n_cached + c0;
      sm.n_keys = n_keys;
      sm.scale = s.softmax_scale;
      DSI_CUDA_CHECK(launch_causal_softmax(sm, stream()));
      GemmParams pv;
      pv.x = Tensor{probs, DType::bf16, rows, n_keys, p_ld};
      pv.w = Tensor{kv_rows, DType::bf16, n_keys, r, width};  // the latent c of each key row
      pv.w_transposed = true;
      pv.y = Tensor::matrix(static_cast<unsigned char*>(o_latent.data) + size_t((first + c0) * heads * r) * 2,
                            DType::bf16, rows, r);
      gemm(*gemm_, pv, stream());
    }
  }
  DSI_CUDA_CHECK_LAUNCH(stream(), "mla_attention (products)");
  return true;
}

}  // namespace dsi::cuda
