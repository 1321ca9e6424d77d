#include "plan/model_size.h"

#include "core/int_math.h"

namespace dsi::plan {

std::string_view weight_dtype_name(WeightDtype d) {
  switch (d) {
    case WeightDtype::bf16: return "bf16";
    case WeightDtype::fp8: return "fp8";
    case WeightDtype::int8: return "int8";
    case WeightDtype::int4: return "int4";
  }
  return "?";
}

std::string_view kv_dtype_name(KvDtype d) { return d == KvDtype::bf16 ? "bf16" : "fp8"; }

WeightDtype parse_weight_dtype(std::string_view s) {
  if (s == "bf16") return WeightDtype::bf16;
  if (s == "fp8") return WeightDtype::fp8;
  if (s == "int8") return WeightDtype::int8;
  if (s == "int4") return WeightDtype::int4;
  fail("--weights {}: unknown weight dtype (bf16, fp8, int8 or int4)", s);
}

KvDtype parse_kv_dtype(std::string_view s) {
  if (s == "bf16") return KvDtype::bf16;
  if (s == "fp8") return KvDtype::fp8;
  fail("--kv-dtype {}: unknown KV-cache dtype (bf16 or fp8)", s);
}

QuantBlock QuantBlock::of(const ModelConfig& c) {
  if (c.quantization) return {c.quantization->block_rows, c.quantization->block_cols};
  return {};
}

int64_t tensor_bytes(const WeightTensor& t, int64_t rows, int64_t cols, WeightDtype dtype, QuantBlock block) {
  const int64_t n = rows * cols;
  if (t.fp32) return 4 * n;
  if (!t.quantizable) return 2 * n;
  switch (dtype) {
    case WeightDtype::bf16: return 2 * n;
    case WeightDtype::fp8: return n + 4 * ceil_div(rows, block.rows) * ceil_div(cols, block.cols);
    case WeightDtype::int8: return n + 2 * rows;
    case WeightDtype::int4: return ceil_div(n, 2) + 2 * rows * ceil_div(cols, int4_group_size);
  }
  return 0;
}

int64_t tensor_bytes(const WeightTensor& t, WeightDtype dtype, QuantBlock block) {
  return t.n_copies * tensor_bytes(t, t.rows, t.cols, dtype, block);
}

ParamCounts count_params(const ModelConfig& c, const WeightInventory& inv) {
  ParamCounts p;
  auto add = [&](const WeightTensor& t) { p.by_group[static_cast<size_t>(t.group)] += t.n_params(); };
  for (const WeightTensor& t : inv.embedding) add(t);
  for (const LayerInventory& l : inv.layers)
    for (const WeightTensor& t : l.tensors) add(t);
  for (const WeightTensor& t : inv.head) add(t);
  for (int64_t n : p.by_group) p.total += n;

  // Per token only num_experts_per_tok of the n_routed_experts run; the rest of the model runs whole.
  const int64_t routed = p.group(ParamGroup::routed_experts);
  const int64_t active_routed =
      c.n_routed_experts > 0 ? routed / c.n_routed_experts * c.num_experts_per_tok : 0;
  p.active_with_embedding = p.total - routed + active_routed;
  p.active = p.active_with_embedding - p.group(ParamGroup::embedding);

  for (const LayerInventory& m : inv.mtp)
    for (const WeightTensor& t : m.tensors) {
      p.mtp += t.n_params();
      if (t.group != ParamGroup::embedding && t.group != ParamGroup::lm_head) p.mtp_unique += t.n_params();
    }
  return p;
}

WeightBytes weight_bytes(const WeightInventory& inv, WeightDtype dtype, QuantBlock block) {
  WeightBytes b;
  for (const WeightTensor& t : inv.embedding) b.main += tensor_bytes(t, dtype, block);
  for (const LayerInventory& l : inv.layers)
    for (const WeightTensor& t : l.tensors) b.main += tensor_bytes(t, dtype, block);
  for (const WeightTensor& t : inv.head) b.main += tensor_bytes(t, dtype, block);
  for (const LayerInventory& m : inv.mtp)
    for (const WeightTensor& t : m.tensors) b.mtp += tensor_bytes(t, dtype, block);
  return b;
}

int64_t kv_bytes_per_token(const ModelConfig& c, KvDtype dtype, int n_layers) {
  return int64_t(n_layers) * c.kv_cache_dim() * (dtype == KvDtype::bf16 ? 2 : 1);
}

}  // namespace dsi::plan
