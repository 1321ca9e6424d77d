// Multi-head latent attention of the CPU backend over the paged latent cache. Every query is
// absorbed into latent space (FlashMLA's formulation): a head's query is [W_UK_h^T q_nope_h,
// q_pe_h], a cache row is [c, k_pe], and the score is their dot product over r + dr values.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm.h"

namespace dsi::cpu {

namespace {

// Heads that share one pass over a sequence's cache rows (they stay in L1/L2 across heads).
constexpr int kHeadGroup = 8;

inline float dot(const float* a, const float* b, int64_t n) {
  float acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

}  // namespace

void CpuBackend::kv_cache_write(const KvCacheView& cache, int layer, const Tensor& kv, const StepContext& ctx) {
  Tensor pool = cache.layer(layer);
  const int64_t* slots = static_cast<const int64_t*>(ctx.kv_slots.data);
  for (int64_t i = 0; i < kv.rows; ++i)
    if (slots[i] != kNoKvSlot) std::memcpy(pool.row<float>(slots[i]), kv.row<const float>(i), size_t(kv.cols) * 4);
}

void CpuBackend::mla_absorb_query(const Tensor& q, const Weight& kv_b, const MlaShape& s, Tensor q_full) {
  const int64_t qd = s.q_head_dim(), D = s.latent_dim(), dn = s.qk_nope_head_dim, r = s.kv_lora_rank;
  // One product per head, each into its own contiguous [n, r] block (outputs of a batch may
  // not interleave), then laid out head by head as [latent | rope] rows.
  const int64_t n = q.rows;
  float* latent = mla_scratch(s.n_heads * n * r);
  std::vector<GemmProblem> problems;
  for (int h = 0; h < s.n_heads; ++h)
    problems.push_back({q.slice_cols(h * qd, dn), kv_b.slice_rows(h * (dn + s.v_head_dim), dn),
                        Tensor::matrix(latent + h * n * r, DType::f32, n, r), true});
  linear_batch(problems);
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < s.n_heads; ++h) {
      float* dst = q_full.row<float>(t) + h * D;
      std::memcpy(dst, latent + (h * n + t) * r, size_t(r) * 4);
      std::memcpy(dst + r, q.row<const float>(t) + h * qd + dn, size_t(s.qk_rope_head_dim) * 4);
    }
}

void CpuBackend::mla_expand_output(const Tensor& o_latent, const Weight& kv_b, const MlaShape& s, Tensor o) {
  const int64_t r = s.kv_lora_rank, dn = s.qk_nope_head_dim, dv = s.v_head_dim;
  const int64_t n = o.rows;
  float* per_head = mla_scratch(s.n_heads * n * dv);
  std::vector<GemmProblem> problems;
  for (int h = 0; h < s.n_heads; ++h)
    problems.push_back({o_latent.slice_cols(h * r, r), kv_b.slice_rows(h * (dn + dv) + dn, dv),
                        Tensor::matrix(per_head + h * n * dv, DType::f32, n, dv), false});
  linear_batch(problems);
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < s.n_heads; ++h)
      std::memcpy(o.row<float>(t) + h * dv, per_head + (h * n + t) * dv, size_t(dv) * 4);
}

void CpuBackend::mla_attention(const Tensor& q_full, const KvCacheView& cache, int layer, const StepContext& ctx,
                               const MlaShape& s, Tensor o_latent) {
  const int64_t D = s.latent_dim(), r = s.kv_lora_rank;
  const int bs = cache.block_size;
  const auto* first_row = static_cast<const int32_t*>(ctx.seq_first_row.data);
  const auto* n_new = static_cast<const int32_t*>(ctx.seq_n_tokens.data);
  const auto* n_cached = static_cast<const int32_t*>(ctx.seq_n_cached.data);

  // Each batch row, with its context length (positions [0, ctx) are visible) and its
  // sequence's block table.
  struct Query {
    int64_t row;
    int64_t ctx;
    const int32_t* blocks;
  };
  std::vector<Query> queries;
  queries.reserve(size_t(ctx.n_tokens()));
  for (int64_t q = 0; q < ctx.n_seqs(); ++q) {
    const int32_t* blocks = ctx.block_table.row<const int32_t>(q);
    for (int32_t i = 0; i < n_new[q]; ++i) queries.push_back({first_row[q] + i, n_cached[q] + i + 1, blocks});
  }
  const int64_t max_ctx = ctx.host.max_context;
  const Tensor pool = cache.layer(layer);
  const int n_groups = (s.n_heads + kHeadGroup - 1) / kHeadGroup;
  const int64_t n_items = int64_t(queries.size()) * n_groups;

#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(kHeadGroup * max_ctx));
    std::vector<const float*> rows(static_cast<size_t>(max_ctx));
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < n_items; ++item) {
      const Query& qr = queries[size_t(item / n_groups)];
      const int h0 = int(item % n_groups) * kHeadGroup;
      const int nh = std::min(kHeadGroup, s.n_heads - h0);
      for (int64_t j = 0; j < qr.ctx; ++j)
        rows[size_t(j)] = pool.row<const float>(int64_t(qr.blocks[j / bs]) * bs + j % bs);
      const float* q = q_full.row<const float>(qr.row) + h0 * D;
      for (int64_t j = 0; j < qr.ctx; ++j)
        for (int h = 0; h < nh; ++h) scores[size_t(h * qr.ctx + j)] = s.softmax_scale * dot(q + h * D, rows[size_t(j)], D);
      float* out = o_latent.row<float>(qr.row) + h0 * r;
      for (int h = 0; h < nh; ++h) {
        float* p = scores.data() + h * qr.ctx;
        const float m = *std::max_element(p, p + qr.ctx);
        float sum = 0;
        for (int64_t j = 0; j < qr.ctx; ++j) sum += (p[j] = std::exp(p[j] - m));
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < qr.ctx; ++j) p[j] *= inv;
        std::fill_n(out + h * r, r, 0.0f);
      }
      for (int64_t j = 0; j < qr.ctx; ++j) {
        const float* c = rows[size_t(j)];
        for (int h = 0; h < nh; ++h) {
          const float p = scores[size_t(h * qr.ctx + j)];
          float* o = out + h * r;
#pragma omp simd
          for (int64_t i = 0; i < r; ++i) o[i] += p * c[i];
        }
      }
    }
  }
}

}  // namespace dsi::cpu
