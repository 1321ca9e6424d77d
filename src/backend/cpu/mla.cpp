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
#include "core/aligned_buffer.h"
#include "core/error.h"

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

void check_kv_b(const Weight& kv_b, const MlaShape& s) {
  if (kv_b.rows() != s.n_heads * (s.qk_nope_head_dim + s.v_head_dim) || kv_b.cols() != s.kv_lora_rank)
    fail("mla: kv_b_proj is [{}, {}], expected [{}, {}]", kv_b.rows(), kv_b.cols(),
         s.n_heads * (s.qk_nope_head_dim + s.v_head_dim), s.kv_lora_rank);
}

}  // namespace

void CpuBackend::kv_cache_write(const KvCacheView& cache, int layer, const Tensor& kv, std::span<const int64_t> slots) {
  if (layer < 0 || layer >= cache.n_layers) fail("kv_cache_write: layer {} outside [0, {})", layer, cache.n_layers);
  if (kv.cols != cache.pool.cols || int64_t(slots.size()) != kv.rows)
    fail("kv_cache_write: kv [{}, {}] with {} slots does not fit rows of {}", kv.rows, kv.cols, slots.size(),
         cache.pool.cols);
  Tensor pool = cache.layer(layer);
  for (int64_t i = 0; i < kv.rows; ++i) {
    int64_t slot = slots[size_t(i)];
    if (slot < 0 || slot >= pool.rows) fail("kv_cache_write: slot {} outside the cache of {} rows", slot, pool.rows);
    std::memcpy(pool.row<float>(slot), kv.row<const float>(i), size_t(kv.cols) * 4);
  }
}

void CpuBackend::mla_absorb_query(const Tensor& q, const Weight& kv_b, const MlaShape& s, Tensor q_full) {
  check_kv_b(kv_b, s);
  const int64_t qd = s.q_head_dim(), D = s.latent_dim(), dn = s.qk_nope_head_dim, r = s.kv_lora_rank;
  if (q.cols != s.n_heads * qd || q_full.cols != s.n_heads * D || q.rows != q_full.rows)
    fail("mla_absorb_query: q [{}, {}] and q_full [{}, {}] do not match {} heads", q.rows, q.cols, q_full.rows,
         q_full.cols, s.n_heads);
  // One product per head, each into its own contiguous [n, r] block (outputs of a batch may
  // not interleave), then laid out head by head as [latent | rope] rows.
  const int64_t n = q.rows;
  AlignedBuffer latent(size_t(s.n_heads * n * r) * 4);
  std::vector<GemmProblem> problems;
  for (int h = 0; h < s.n_heads; ++h)
    problems.push_back({q.slice_cols(h * qd, dn), kv_b.slice_rows(h * (dn + s.v_head_dim), dn),
                        Tensor::matrix(latent.as<float>() + h * n * r, DType::f32, n, r), true});
  linear_batch(problems);
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < s.n_heads; ++h) {
      float* dst = q_full.row<float>(t) + h * D;
      std::memcpy(dst, latent.as<float>() + (h * n + t) * r, size_t(r) * 4);
      std::memcpy(dst + r, q.row<const float>(t) + h * qd + dn, size_t(s.qk_rope_head_dim) * 4);
    }
}

void CpuBackend::mla_expand_output(const Tensor& o_latent, const Weight& kv_b, const MlaShape& s, Tensor o) {
  check_kv_b(kv_b, s);
  const int64_t r = s.kv_lora_rank, dn = s.qk_nope_head_dim, dv = s.v_head_dim;
  if (o_latent.cols != s.n_heads * r || o.cols != s.n_heads * dv || o.rows != o_latent.rows)
    fail("mla_expand_output: o_latent [{}, {}] and o [{}, {}] do not match {} heads", o_latent.rows, o_latent.cols,
         o.rows, o.cols, s.n_heads);
  const int64_t n = o.rows;
  AlignedBuffer per_head(size_t(s.n_heads * n * dv) * 4);
  std::vector<GemmProblem> problems;
  for (int h = 0; h < s.n_heads; ++h)
    problems.push_back({o_latent.slice_cols(h * r, r), kv_b.slice_rows(h * (dn + dv) + dn, dv),
                        Tensor::matrix(per_head.as<float>() + h * n * dv, DType::f32, n, dv), false});
  linear_batch(problems);
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < s.n_heads; ++h)
      std::memcpy(o.row<float>(t) + h * dv, per_head.as<float>() + (h * n + t) * dv, size_t(dv) * 4);
}

void CpuBackend::mla_attention(const Tensor& q_full, const KvCacheView& cache, int layer, const ForwardBatch& batch,
                               const MlaShape& s, Tensor o_latent) {
  const int64_t D = s.latent_dim(), r = s.kv_lora_rank;
  const int bs = cache.block_size;
  if (q_full.cols != s.n_heads * D || o_latent.cols != s.n_heads * r || q_full.rows != batch.n_tokens() ||
      o_latent.rows != q_full.rows)
    fail("mla_attention: q_full [{}, {}] / o_latent [{}, {}] do not match {} tokens of {} heads", q_full.rows,
         q_full.cols, o_latent.rows, o_latent.cols, batch.n_tokens(), s.n_heads);
  if (cache.pool.cols != D) fail("mla_attention: cache rows hold {} values, expected {}", cache.pool.cols, D);
  if (layer < 0 || layer >= cache.n_layers) fail("mla_attention: layer {} outside [0, {})", layer, cache.n_layers);

  // Each batch row, with its sequence and context length (positions [0, ctx) are visible).
  struct Query {
    int64_t row;
    int64_t ctx;
    const BatchSequence* seq;
  };
  std::vector<Query> queries;
  int64_t max_ctx = 0;
  for (const auto& seq : batch.sequences) {
    const int64_t total = int64_t(seq.n_cached) + seq.n_tokens;
    if (seq.first_row < 0 || seq.n_tokens < 0 || seq.first_row + seq.n_tokens > batch.n_tokens())
      fail("mla_attention: sequence rows [{}, {}) outside the batch", seq.first_row, seq.first_row + seq.n_tokens);
    if (int64_t(seq.block_table.size()) * bs < total)
      fail("mla_attention: {} blocks cannot hold {} tokens", seq.block_table.size(), total);
    for (int32_t b : seq.block_table)
      if (b < 0 || b >= cache.n_blocks) fail("mla_attention: block {} outside [0, {})", b, cache.n_blocks);
    for (int32_t i = 0; i < seq.n_tokens; ++i) queries.push_back({seq.first_row + i, seq.n_cached + i + 1, &seq});
    max_ctx = std::max(max_ctx, total);
  }
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
        rows[size_t(j)] = pool.row<const float>(int64_t(qr.seq->block_table[size_t(j / bs)]) * bs + j % bs);
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
