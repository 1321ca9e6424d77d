#pragma once
// The CPU backend: float32 reference implementations of every op, multi-threaded with OpenMP.
#include "backend/backend.h"

namespace dsi::cpu {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  Buffer alloc(DType dtype, int64_t rows, int64_t cols) override;
  void to_host(const Tensor& src, float* dst) override;

  void embedding(const Weight& table, std::span<const int32_t> ids, Tensor out) override;
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) override;
  void linear(const Tensor& x, const Weight& w, Tensor out) override;
  void rope(Tensor x, int n_heads, int64_t head_stride, int64_t rope_offset, std::span<const int32_t> positions,
            std::span<const float> inv_freq, float attention_factor) override;
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor out) override;
  void add(Tensor x, const Tensor& y) override;

  void kv_cache_write(const KvCacheView& cache, int layer, const Tensor& kv, std::span<const int64_t> slots) override;
  void mla_absorb_query(const Tensor& q, const Weight& kv_b, const MlaShape& shape, Tensor q_full) override;
  void mla_attention(const Tensor& q_full, const KvCacheView& cache, int layer, const ForwardBatch& batch,
                     const MlaShape& shape, Tensor o_latent) override;
  void mla_expand_output(const Tensor& o_latent, const Weight& kv_b, const MlaShape& shape, Tensor o) override;

  void moe_route(const Tensor& logits, const Tensor& score_bias, const RoutingParams& params, Tensor expert_ids,
                 Tensor expert_weights) override;
  void moe_experts(const Tensor& x, const Tensor& expert_ids, const Tensor& expert_weights,
                   std::span<const MlpWeights> experts, Tensor out) override;
};

// The routing rule for one token (MATH.md "MoE"), exposed for unit tests.
//   logits: [n_experts]; score_bias: [n_experts] or empty; ids, weights: [top_k], best first.
void route_token(std::span<const float> logits, std::span<const float> score_bias, const RoutingParams& params,
                 std::span<int32_t> ids, std::span<float> weights);

}  // namespace dsi::cpu
