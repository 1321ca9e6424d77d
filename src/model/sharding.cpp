#include "model/sharding.h"

#include <cstring>
#include <deque>

#include "core/aligned_buffer.h"
#include "core/error.h"
#include "core/int_math.h"
#include "model/weight_map.h"

namespace dsi {

void check_parallel_layout(const ParallelContext& p, const ModelConfig& c) {
  auto need = [](int64_t n, int parts, const char* what, const char* flag) {
    if (n % parts != 0) fail("{} {} is not divisible by {} {}", what, n, flag, parts);
  };
  need(c.n_heads, p.tp_size, "num_attention_heads", "--tensor-parallel-size");
  need(c.intermediate_size, p.tp_size, "intermediate_size (dense MLP)", "--tensor-parallel-size");
  if (c.n_routed_experts > 0) {
    need(c.n_routed_experts, p.ep_size, "n_routed_experts", "--expert-parallel-size");
    need(c.moe_intermediate_size, p.expert_tp_size,
         "moe_intermediate_size (each routed expert is split across world size / expert-parallel size ranks)",
         "world size / expert-parallel size =");
    if (p.dp_size == 1)
      need(c.moe_intermediate_size * c.n_shared_experts, p.world_size,
           "the shared experts' width moe_intermediate_size x n_shared_experts (split across all ranks)",
           "the world size");
  } else if (p.ep_size > 1) {
    fail("--expert-parallel-size {}: the model has no routed experts", p.ep_size);
  }
}

ModelConfig local_config(const ParallelContext& p, const ModelConfig& c) {
  ModelConfig l = c;
  l.n_heads = c.n_heads / p.tp_size;
  l.intermediate_size = c.intermediate_size / p.tp_size;
  l.moe_intermediate_size = c.moe_intermediate_size / p.expert_tp_size;
  return l;
}

namespace {

// The full model's storage plus the packed column slices.
class ShardStorage : public WeightStorage {
 public:
  explicit ShardStorage(std::shared_ptr<WeightStorage> full) : full_(std::move(full)) {}
  AlignedBuffer& buffer(size_t n) { return copies_.emplace_back(n); }

 private:
  std::shared_ptr<WeightStorage> full_;
  std::deque<AlignedBuffer> copies_;  // deque: stable addresses
};

Weight slice_cols(const Weight& w, int64_t c0, int64_t n, ShardStorage& st) {
  const int64_t rows = w.rows();
  Weight out = w;
  if (w.quantized() && c0 % w.block_cols != 0) {
    auto& b = st.buffer(size_t(rows * n) * 4);
    float* p = b.as<float>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) p[r * n + j] = w.at(r, c0 + j);
    out = Weight{};
    out.w = Tensor::matrix(p, DType::f32, rows, n);
    return out;
  }
  const size_t es = dtype_size(w.w.dtype);
  auto& b = st.buffer(size_t(rows * n) * es);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(b.data() + size_t(r * n) * es, static_cast<const char*>(w.w.data) + size_t(r * w.w.row_stride + c0) * es,
                size_t(n) * es);
  out.w = Tensor::matrix(b.data(), w.w.dtype, rows, n);
  if (w.quantized()) {
    const int64_t s0 = c0 / w.block_cols, sn = ceil_div(n, int64_t(w.block_cols)), srows = w.scale.rows;
    auto& sb = st.buffer(size_t(srows * sn) * 4);
    for (int64_t r = 0; r < srows; ++r) std::memcpy(sb.as<float>() + r * sn, w.scale.row<const float>(r) + s0, size_t(sn) * 4);
    out.scale = Tensor::matrix(sb.data(), DType::f32, srows, sn);
  }
  return out;
}

}  // namespace

ModelWeights shard_weights(const ModelConfig& c, const ParallelContext& p, ModelWeights w) {
  if (p.single()) return w;
  if (w.uploaded) fail("shard_weights: the weights are already in backend memory");
  auto st = std::make_shared<ShardStorage>(w.storage);
  const int e0 = expert_begin(p, c), n_local = n_local_experts(p, c);
  uint64_t n_bytes = 0;
  for (const WeightSpec& spec : weight_table(c, &w)) {
    if (!spec.weight) continue;  // float32 vectors: replicated
    if (spec.group == ShardGroup::shard_group_expert && (spec.expert < e0 || spec.expert >= e0 + n_local)) continue;
    int parts = 1, part = 0;
    switch (spec.group) {
      case ShardGroup::shard_group_none: break;
      // `dsinfer plan` counts them split by TP, as GPU servers run them; kept whole here, so
      // every rank computes all the logits and no all-gather of them is needed.
      case ShardGroup::shard_group_vocab: break;
      case ShardGroup::shard_group_tp: parts = p.tp_size, part = p.tp_rank; break;
      case ShardGroup::shard_group_all_ranks:
        // Under DP attention a rank's tokens are its own: the shared experts stay whole.
        if (p.dp_size == 1) parts = p.world_size, part = p.world_rank;
        break;
      case ShardGroup::shard_group_expert: parts = p.expert_tp_size, part = p.expert_tp_rank; break;
    }
    Weight& wt = *spec.weight;
    if (parts > 1 && spec.shard == ShardDim::shard_dim_rows) {
      const int64_t n = wt.rows() / parts;
      wt = wt.slice_rows(n * part, n);
    } else if (parts > 1 && spec.shard == ShardDim::shard_dim_cols) {
      const int64_t n = wt.cols() / parts;
      wt = slice_cols(wt, n * part, n, *st);
    }
    n_bytes += uint64_t(wt.w.numel()) * dtype_size(wt.w.dtype) + uint64_t(wt.scale.numel()) * 4;
  }
  for (auto& layer : w.layers)
    if (layer.moe) {
      auto& ex = layer.moe->experts;
      std::vector<MlpWeights> mine(ex.begin() + e0, ex.begin() + e0 + n_local);
      ex = std::move(mine);
    }
  if (c.tie_word_embeddings) w.lm_head = w.embed;
  w.storage = st;
  w.n_bytes = n_bytes;
  return w;
}

}  // namespace dsi
