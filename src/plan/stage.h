#pragma once
// Pipeline stages: which layers each stage holds and the weight bytes of one GPU in it.
#include <cstdint>
#include <vector>

#include "plan/inventory.h"
#include "plan/layout.h"
#include "plan/model_size.h"

namespace dsi::plan {

struct StageRange {
  int first_layer = 0;  // [first_layer, end_layer) of model.layers
  int end_layer = 0;
  bool first_stage = true;  // holds the embedding
  bool last_stage = true;   // holds the final norm, lm_head and the MTP modules
  int n_layers() const { return end_layer - first_layer; }
};

// n_layers split as evenly as possible, the first (n_layers % pp) stages one layer longer.
std::vector<StageRange> stage_ranges(int n_layers, int pp);

// Bytes of one GPU's share of a tensor (all its copies in the layer): routed experts are spread
// whole over EP ranks, then split by the TP inside an expert; everything else is split by TP
// per its TpSplit.
int64_t shard_bytes(const WeightTensor& t, const Layout& l, WeightDtype dtype, QuantBlock block);

// Bytes of one GPU's shard of a stage's weights.
int64_t stage_weight_bytes(const WeightInventory& inv, const Layout& l, const StageRange& s, WeightDtype dtype,
                           QuantBlock block, bool with_mtp);

}  // namespace dsi::plan
