#include "plan/stage.h"

#include "core/int_math.h"

namespace dsi::plan {

std::vector<StageRange> stage_ranges(int n_layers, int pp) {
  std::vector<StageRange> out;
  int first = 0;
  for (int s = 0; s < pp; ++s) {
    int n = n_layers / pp + (s < n_layers % pp ? 1 : 0);
    out.push_back({first, first + n, s == 0, s == pp - 1});
    first += n;
  }
  return out;
}

int64_t shard_bytes(const WeightTensor& t, const Layout& l, WeightDtype dtype, QuantBlock block) {
  const bool expert = t.group == ParamGroup::routed_experts;
  const int64_t split_by = expert ? l.expert_tp() : l.tp;
  int64_t rows = t.rows, cols = t.cols;
  if (t.split == TpSplit::rows) rows = ceil_div(rows, split_by);
  if (t.split == TpSplit::cols) cols = ceil_div(cols, split_by);
  const int64_t copies = expert ? ceil_div(t.n_copies, l.ep) : t.n_copies;
  return copies * tensor_bytes(t, rows, cols, dtype, block);
}

namespace {

int64_t shard_bytes(const std::vector<WeightTensor>& ts, const Layout& l, WeightDtype dtype, QuantBlock block) {
  int64_t b = 0;
  for (const WeightTensor& t : ts) b += shard_bytes(t, l, dtype, block);
  return b;
}

}  // namespace

int64_t stage_weight_bytes(const WeightInventory& inv, const Layout& l, const StageRange& s, WeightDtype dtype,
                           QuantBlock block, bool with_mtp) {
  int64_t b = 0;
  if (s.first_stage) b += shard_bytes(inv.embedding, l, dtype, block);
  for (int i = s.first_layer; i < s.end_layer; ++i) b += shard_bytes(inv.layers[i].tensors, l, dtype, block);
  if (s.last_stage) {
    b += shard_bytes(inv.head, l, dtype, block);
    if (with_mtp)
      for (const LayerInventory& m : inv.mtp) b += shard_bytes(m.tensors, l, dtype, block);
  }
  return b;
}

}  // namespace dsi::plan
