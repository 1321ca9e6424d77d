#include "backend/ops.h"

#include "core/error.h"

namespace dsi::ops {

namespace {

// The checks every op shares. `op` and the operand's name go into the message.
void require_dtype(const Tensor& t, DType want, const char* op, const char* name) {
  if (t.dtype != want) fail("{}: {} must be {}, got {}", op, name, dtype_name(want), dtype_name(t.dtype));
}
void require_act(Backend& be, const Tensor& t, const char* op, const char* name) {
  require_dtype(t, be.activation_dtype(), op, name);
}
void require_shape(const Tensor& t, int64_t rows, int64_t cols, const char* op, const char* name) {
  if (t.rows != rows || t.cols != cols) fail("{}: {} is [{}, {}], expected [{}, {}]", op, name, t.rows, t.cols, rows, cols);
}
void require_data(const Tensor& t, const char* op, const char* name) {
  if (!t.data && t.numel() > 0) fail("{}: {} has no memory", op, name);
  if (t.row_stride < t.cols && t.rows > 1) fail("{}: {} has row stride {} < {} columns", op, name, t.row_stride, t.cols);
}
void require_same_shape(const Tensor& a, const Tensor& b, const char* op, const char* a_name, const char* b_name) {
  if (a.rows != b.rows || a.cols != b.cols)
    fail("{}: {} [{}, {}] and {} [{}, {}] differ in shape", op, a_name, a.rows, a.cols, b_name, b.rows, b.cols);
}
void require_weight(const Weight& w, const char* op, const char* name) {
  const DType t = w.w.dtype;
  if (t != DType::f32 && t != DType::bf16 && t != DType::f16 && t != DType::f8_e4m3)
    fail("{}: weight {} has dtype {}, expected F32, BF16, F16 or F8_E4M3", op, name, dtype_name(t));
  if ((t == DType::f8_e4m3) != w.quantized())
    fail("{}: weight {} is {} {} block scales", op, name, dtype_name(t), w.quantized() ? "with" : "without");
  require_data(w.w, op, name);
}
// Byte ranges of two views overlap (outputs that must not alias an input).
bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.numel() == 0 || b.numel() == 0) return false;
  auto span = [](const Tensor& t) {
    const char* lo = static_cast<const char*>(t.data);
    const char* hi = lo + ((t.rows - 1) * t.row_stride + t.cols) * int64_t(dtype_size(t.dtype));
    return std::pair{lo, hi};
  };
  auto [a0, a1] = span(a);
  auto [b0, b1] = span(b);
  return a0 < b1 && b0 < a1;
}
void require_disjoint(const Tensor& out, const Tensor& in, const char* op, const char* out_name, const char* in_name) {
  if (overlaps(out, in)) fail("{}: {} overlaps {}", op, out_name, in_name);
}
void require_layer(const KvCacheView& cache, int layer, const char* op) {
  if (layer < 0 || layer >= cache.n_layers) fail("{}: layer {} outside [0, {})", op, layer, cache.n_layers);
}
void require_kv_b(const Weight& kv_b, const MlaShape& s, const char* op) {
  require_weight(kv_b, op, "kv_b");
  if (kv_b.rows() != s.n_heads * (s.qk_nope_head_dim + s.v_head_dim) || kv_b.cols() != s.kv_lora_rank)
    fail("{}: kv_b_proj is [{}, {}], expected [{}, {}]", op, kv_b.rows(), kv_b.cols(),
         s.n_heads * (s.qk_nope_head_dim + s.v_head_dim), s.kv_lora_rank);
}
void require_routing(const RoutingParams& p) {
  if (p.n_experts < 1 || p.top_k < 1 || p.top_k > p.n_experts || p.n_group < 1 || p.n_experts % p.n_group != 0 ||
      p.topk_group < 1 || p.topk_group > p.n_group)
    fail("moe_route: inconsistent routing parameters: {} experts, top {}, {} groups, top {} groups", p.n_experts,
         p.top_k, p.n_group, p.topk_group);
}
void require_expert_weight(const ExpertWeight& w, int64_t rows, int64_t cols, const char* name) {
  const char* op = "moe_grouped_mlp";
  if (w.experts.empty()) fail("{}: no experts in {}", op, name);
  for (const Weight& e : w.experts) {
    require_weight(e, op, name);
    if (e.rows() != rows || e.cols() != cols || e.w.dtype != w.experts[0].w.dtype)
      fail("{}: an expert's {} is {} [{}, {}], expected {} [{}, {}] like the others", op, name, dtype_name(e.w.dtype),
           e.rows(), e.cols(), dtype_name(w.experts[0].w.dtype), rows, cols);
  }
}

}  // namespace

void embedding(Backend& be, const Weight& table, const StepContext& ctx, Tensor out) {
  require_act(be, out, "embedding", "out");
  require_weight(table, "embedding", "table");
  if (table.quantized()) fail("embedding: quantised tables are not supported");
  if (table.rows() < ctx.bounds.vocab_size)
    fail("embedding: table has {} rows for a vocabulary of {}", table.rows(), ctx.bounds.vocab_size);
  require_shape(out, ctx.n_tokens(), table.cols(), "embedding", "out");
  be.embedding(table, ctx, out);
}

namespace {

void check_rms_norm(Backend& be, const Tensor& x, const Tensor& weight, const Tensor& out) {
  require_act(be, x, "rms_norm", "x");
  require_act(be, out, "rms_norm", "out");
  require_dtype(weight, DType::f32, "rms_norm", "weight");
  require_same_shape(x, out, "rms_norm", "x", "out");
  if (weight.numel() != x.cols) fail("rms_norm: weight has {} values for rows of {}", weight.numel(), x.cols);
}

void check_rope(Backend& be, const Tensor& x, const RopeParams& r, const StepContext& ctx) {
  require_act(be, x, "rope", "x");
  require_dtype(r.inv_freq, DType::f32, "rope", "inv_freq");
  if (x.rows != ctx.n_tokens()) fail("rope: x has {} rows for a step of {} tokens", x.rows, ctx.n_tokens());
  const int64_t half = r.inv_freq.numel();
  if (r.n_heads < 1 || half < 1 || (r.n_heads - 1) * r.head_stride + r.rope_offset + 2 * half > x.cols)
    fail("rope: {} heads of stride {} with rope dims [{}, {}) exceed the row of {}", r.n_heads, r.head_stride,
         r.rope_offset, r.rope_offset + 2 * half, x.cols);
}

void check_kv_cache_write(Backend& be, const KvCacheView& cache, int layer, const Tensor& kv, const StepContext& ctx) {
  require_layer(cache, layer, "kv_cache_write");
  require_act(be, kv, "kv_cache_write", "kv");
  require_dtype(cache.pool, be.kv_dtype(), "kv_cache_write", "cache");
  require_shape(kv, ctx.n_tokens(), cache.pool.cols, "kv_cache_write", "kv");
  if (cache.n_blocks != ctx.bounds.n_kv_blocks || cache.block_size != ctx.bounds.block_size)
    fail("kv_cache_write: the cache has {} blocks of {}, the step was checked against {} of {}", cache.n_blocks,
         cache.block_size, ctx.bounds.n_kv_blocks, ctx.bounds.block_size);
}

}  // namespace

void rms_norm(Backend& be, const Tensor& x, const Tensor& weight, float eps, Tensor out) {
  check_rms_norm(be, x, weight, out);
  be.rms_norm(x, weight, eps, out);
}

void add_rms_norm(Backend& be, Tensor x, const Tensor& y, const Tensor& weight, float eps, Tensor out) {
  require_act(be, x, "add_rms_norm", "x");
  require_act(be, y, "add_rms_norm", "y");
  require_act(be, out, "add_rms_norm", "out");
  require_dtype(weight, DType::f32, "add_rms_norm", "weight");
  require_same_shape(x, y, "add_rms_norm", "x", "y");
  require_same_shape(x, out, "add_rms_norm", "x", "out");
  require_disjoint(out, x, "add_rms_norm", "out", "x");
  require_disjoint(out, y, "add_rms_norm", "out", "y");
  if (weight.numel() != x.cols) fail("add_rms_norm: weight has {} values for rows of {}", weight.numel(), x.cols);
  be.add_rms_norm(x, y, weight, eps, out);
}

void linear(Backend& be, const Tensor& x, const Weight& w, Tensor out) {
  require_act(be, x, "linear", "x");
  if (out.dtype != be.activation_dtype() && out.dtype != DType::f32)
    fail("linear: out must be {} or F32, got {}", dtype_name(be.activation_dtype()), dtype_name(out.dtype));
  require_weight(w, "linear", "w");
  require_data(x, "linear", "x");
  if (x.cols != w.cols()) fail("linear: x has {} columns, weight [{}, {}] expects {}", x.cols, w.rows(), w.cols(), w.cols());
  require_shape(out, x.rows, w.rows(), "linear", "out");
  require_disjoint(out, x, "linear", "out", "x");
  be.linear(x, w, out);
}

void rope(Backend& be, Tensor x, const RopeParams& r, const StepContext& ctx) {
  check_rope(be, x, r, ctx);
  be.rope(x, r, ctx);
}

void silu_mul(Backend& be, const Tensor& gate, const Tensor& up, Tensor out) {
  require_act(be, gate, "silu_mul", "gate");
  require_act(be, up, "silu_mul", "up");
  require_act(be, out, "silu_mul", "out");
  require_same_shape(gate, up, "silu_mul", "gate", "up");
  require_same_shape(gate, out, "silu_mul", "gate", "out");
  be.silu_mul(gate, up, out);
}

void add(Backend& be, Tensor x, const Tensor& y) {
  require_act(be, x, "add", "x");
  require_act(be, y, "add", "y");
  require_same_shape(x, y, "add", "x", "y");
  be.add(x, y);
}

void gather_rows(Backend& be, const Tensor& x, const Tensor& rows, Tensor out) {
  require_act(be, x, "gather_rows", "x");
  require_act(be, out, "gather_rows", "out");
  require_dtype(rows, DType::i32, "gather_rows", "rows");
  require_shape(rows, out.rows, 1, "gather_rows", "rows");
  if (out.cols != x.cols) fail("gather_rows: out has {} columns, x has {}", out.cols, x.cols);
  require_disjoint(out, x, "gather_rows", "out", "x");
  be.gather_rows(x, rows, out);
}

void kv_cache_write(Backend& be, const KvCacheView& cache, int layer, const Tensor& kv, const StepContext& ctx) {
  check_kv_cache_write(be, cache, layer, kv, ctx);
  be.kv_cache_write(cache, layer, kv, ctx);
}

void mla_rope_norm_cache(Backend& be, Tensor q, Tensor kv, const MlaRopeNorm& p, const KvCacheView& cache, int layer,
                         const StepContext& ctx) {
  const int64_t r = p.kv_norm.numel();
  if (r < 1 || r > kv.cols) fail("mla_rope_norm_cache: a latent of {} columns in rows of {}", r, kv.cols);
  check_rms_norm(be, kv.slice_cols(0, r), p.kv_norm, kv.slice_cols(0, r));
  check_rope(be, q, p.q_rope, ctx);
  check_rope(be, kv, p.kv_rope, ctx);
  if (p.kv_rope.rope_offset < r)
    fail("mla_rope_norm_cache: kv's rotary dims start at {}, inside the latent of {}", p.kv_rope.rope_offset, r);
  check_kv_cache_write(be, cache, layer, kv, ctx);
  // (q and kv are usually column ranges of the same rows, interleaved in memory: their byte
  // spans overlap while their elements do not, so no span check here.)
  be.mla_rope_norm_cache(q, kv, p, cache, layer, ctx);
}

void mla_absorb_query(Backend& be, const Tensor& q, const Weight& kv_b, const MlaShape& s, Tensor q_full) {
  require_kv_b(kv_b, s, "mla_absorb_query");
  require_act(be, q, "mla_absorb_query", "q");
  require_act(be, q_full, "mla_absorb_query", "q_full");
  require_shape(q, q.rows, s.n_heads * s.q_head_dim(), "mla_absorb_query", "q");
  require_shape(q_full, q.rows, s.n_heads * s.latent_dim(), "mla_absorb_query", "q_full");
  require_disjoint(q_full, q, "mla_absorb_query", "q_full", "q");
  be.mla_absorb_query(q, kv_b, s, q_full);
}

void mla_attention(Backend& be, const Tensor& q_full, const KvCacheView& cache, int layer, const StepContext& ctx,
                   const MlaShape& s, Tensor o_latent) {
  require_layer(cache, layer, "mla_attention");
  require_act(be, q_full, "mla_attention", "q_full");
  require_act(be, o_latent, "mla_attention", "o_latent");
  require_dtype(cache.pool, be.kv_dtype(), "mla_attention", "cache");
  require_shape(q_full, ctx.n_tokens(), s.n_heads * s.latent_dim(), "mla_attention", "q_full");
  require_shape(o_latent, ctx.n_tokens(), s.n_heads * s.kv_lora_rank, "mla_attention", "o_latent");
  if (cache.pool.cols != s.latent_dim())
    fail("mla_attention: cache rows hold {} values, expected {}", cache.pool.cols, s.latent_dim());
  if (cache.n_blocks != ctx.bounds.n_kv_blocks || cache.block_size != ctx.bounds.block_size)
    fail("mla_attention: the cache has {} blocks of {}, the step was checked against {} of {}", cache.n_blocks,
         cache.block_size, ctx.bounds.n_kv_blocks, ctx.bounds.block_size);
  require_disjoint(o_latent, q_full, "mla_attention", "o_latent", "q_full");
  be.mla_attention(q_full, cache, layer, ctx, s, o_latent);
}

void mla_expand_output(Backend& be, const Tensor& o_latent, const Weight& kv_b, const MlaShape& s, Tensor o) {
  require_kv_b(kv_b, s, "mla_expand_output");
  require_act(be, o_latent, "mla_expand_output", "o_latent");
  require_act(be, o, "mla_expand_output", "o");
  require_shape(o_latent, o_latent.rows, s.n_heads * s.kv_lora_rank, "mla_expand_output", "o_latent");
  require_shape(o, o_latent.rows, s.n_heads * s.v_head_dim, "mla_expand_output", "o");
  require_disjoint(o, o_latent, "mla_expand_output", "o", "o_latent");
  be.mla_expand_output(o_latent, kv_b, s, o);
}

void moe_route(Backend& be, const Tensor& logits, const Tensor& score_bias, const RoutingParams& p, Tensor expert_ids,
               Tensor expert_weights, Tensor expert_counts) {
  require_routing(p);
  const int64_t n = logits.rows;
  require_dtype(logits, DType::f32, "moe_route", "logits");
  require_shape(logits, n, p.n_experts, "moe_route", "logits");
  require_dtype(expert_ids, DType::i32, "moe_route", "expert_ids");
  require_shape(expert_ids, n, p.top_k, "moe_route", "expert_ids");
  require_dtype(expert_weights, DType::f32, "moe_route", "expert_weights");
  require_shape(expert_weights, n, p.top_k, "moe_route", "expert_weights");
  require_dtype(expert_counts, DType::i32, "moe_route", "expert_counts");
  require_shape(expert_counts, 1, p.n_experts, "moe_route", "expert_counts");
  if (p.use_score_bias) {
    require_dtype(score_bias, DType::f32, "moe_route", "score_bias");
    require_shape(score_bias, 1, p.n_experts, "moe_route", "score_bias");
  }
  be.moe_route(logits, score_bias, p, expert_ids, expert_weights, expert_counts);
}

void moe_dispatch(Backend& be, const Tensor& x, const Tensor& expert_ids, const Tensor& expert_counts, Tensor x_sorted,
                  Tensor expert_offsets, Tensor row_map) {
  const int64_t n = x.rows, k = expert_ids.cols, E = expert_counts.cols;
  require_act(be, x, "moe_dispatch", "x");
  require_act(be, x_sorted, "moe_dispatch", "x_sorted");
  require_dtype(expert_ids, DType::i32, "moe_dispatch", "expert_ids");
  require_shape(expert_ids, n, k, "moe_dispatch", "expert_ids");
  require_dtype(expert_counts, DType::i32, "moe_dispatch", "expert_counts");
  require_shape(expert_counts, 1, E, "moe_dispatch", "expert_counts");
  require_shape(x_sorted, n * k, x.cols, "moe_dispatch", "x_sorted");
  require_dtype(expert_offsets, DType::i32, "moe_dispatch", "expert_offsets");
  require_shape(expert_offsets, 1, E + 1, "moe_dispatch", "expert_offsets");
  require_dtype(row_map, DType::i32, "moe_dispatch", "row_map");
  require_shape(row_map, n, k, "moe_dispatch", "row_map");
  require_disjoint(x_sorted, x, "moe_dispatch", "x_sorted", "x");
  be.moe_dispatch(x, expert_ids, expert_counts, x_sorted, expert_offsets, row_map);
}

void moe_grouped_mlp(Backend& be, const Tensor& x_sorted, const Tensor& expert_offsets, const ExpertMlpWeights& w,
                     Tensor gate, Tensor up, Tensor y_sorted) {
  const int64_t m = x_sorted.rows, H = x_sorted.cols, inter = w.gate.rows();
  const int E = w.gate.n_experts();
  require_act(be, x_sorted, "moe_grouped_mlp", "x_sorted");
  require_act(be, gate, "moe_grouped_mlp", "gate");
  require_act(be, up, "moe_grouped_mlp", "up");
  require_act(be, y_sorted, "moe_grouped_mlp", "y_sorted");
  require_expert_weight(w.gate, inter, H, "gate");
  require_expert_weight(w.up, inter, H, "up");
  require_expert_weight(w.down, H, inter, "down");
  if (w.up.n_experts() != E || w.down.n_experts() != E)
    fail("moe_grouped_mlp: {} gate, {} up and {} down experts", E, w.up.n_experts(), w.down.n_experts());
  require_dtype(expert_offsets, DType::i32, "moe_grouped_mlp", "expert_offsets");
  require_shape(expert_offsets, 1, E + 1, "moe_grouped_mlp", "expert_offsets");
  require_shape(gate, m, inter, "moe_grouped_mlp", "gate");
  require_shape(up, m, inter, "moe_grouped_mlp", "up");
  require_shape(y_sorted, m, H, "moe_grouped_mlp", "y_sorted");
  for (const Tensor* t : {&gate, &up}) require_disjoint(*t, x_sorted, "moe_grouped_mlp", "scratch", "x_sorted");
  require_disjoint(gate, up, "moe_grouped_mlp", "gate", "up");
  require_disjoint(y_sorted, gate, "moe_grouped_mlp", "y_sorted", "gate");
  be.moe_grouped_mlp(x_sorted, expert_offsets, w, gate, up, y_sorted);
}

void moe_combine(Backend& be, const Tensor& y_sorted, const Tensor& row_map, const Tensor& expert_ids,
                 const Tensor& expert_weights, const Tensor& shared, Tensor out) {
  const int64_t n = out.rows, k = row_map.cols;
  require_act(be, y_sorted, "moe_combine", "y_sorted");
  require_act(be, out, "moe_combine", "out");
  require_shape(y_sorted, n * k, out.cols, "moe_combine", "y_sorted");
  require_dtype(row_map, DType::i32, "moe_combine", "row_map");
  require_shape(row_map, n, k, "moe_combine", "row_map");
  require_dtype(expert_ids, DType::i32, "moe_combine", "expert_ids");
  require_shape(expert_ids, n, k, "moe_combine", "expert_ids");
  require_dtype(expert_weights, DType::f32, "moe_combine", "expert_weights");
  require_shape(expert_weights, n, k, "moe_combine", "expert_weights");
  require_disjoint(out, y_sorted, "moe_combine", "out", "y_sorted");
  if (shared.data) {
    require_act(be, shared, "moe_combine", "shared");
    require_same_shape(shared, out, "moe_combine", "shared", "out");
    require_disjoint(out, shared, "moe_combine", "out", "shared");
  }
  be.moe_combine(y_sorted, row_map, expert_ids, expert_weights, shared, out);
}

void sample(Backend& be, const Tensor& logits, std::span<const sampling::SamplingRow> rows,
            std::span<const sampling::SamplingPenalty> penalties, std::span<sampling::SamplingResult> results) {
  require_dtype(logits, DType::f32, "sample", "logits");
  require_data(logits, "sample", "logits");
  if (logits.rows < int64_t(rows.size()) || results.size() != rows.size())
    fail("sample: {} rows with {} results over {} logits rows", rows.size(), results.size(), logits.rows);
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (r.penalty_begin < 0 || r.penalty_begin > r.penalty_end || size_t(r.penalty_end) > penalties.size())
      fail("sample: row {} names penalties [{}, {}) of {}", i, r.penalty_begin, r.penalty_end, penalties.size());
  }
  if (rows.empty()) return;
  be.sample(logits, rows, penalties, results);
}

}  // namespace dsi::ops

namespace dsi {

void Backend::sample(const Tensor&, std::span<const sampling::SamplingRow>, std::span<const sampling::SamplingPenalty>,
                     std::span<sampling::SamplingResult>) {
  fail("{}: this backend has no device sampler", name());
}

}  // namespace dsi
