#pragma once
// The CPU backend: float32 reference implementations of every op, multi-threaded with OpenMP.
// Its "backend memory" is host memory: weights stay where the checkpoint's memory maps (or the
// dummy generator) put them, kept alive by their owners; activations and the KV cache are
// aligned host buffers. Ops run synchronously on the calling thread's OpenMP team.
#include <vector>

#include "core/aligned_buffer.h"

#include "backend/backend.h"
#include "backend/step_context.h"

namespace dsi::cpu {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  DType activation_dtype() const override { return DType::f32; }
  DType kv_dtype() const override { return DType::f32; }
  DeviceMemory device_memory() override;

  Buffer alloc(DType dtype, int64_t rows, int64_t cols) override;
  Buffer alloc_staging(DType dtype, int64_t rows, int64_t cols) override { return alloc(dtype, rows, cols); }
  Weight upload(const Weight& host, const std::shared_ptr<void>& host_owner) override;
  Tensor upload_vector(const Tensor& host, const std::shared_ptr<void>& host_owner) override;
  ExpertWeight upload_experts(std::span<const Weight> host, const std::shared_ptr<void>& host_owner) override;
  void copy_from_host(const void* src, Tensor dst) override;
  void copy_to_host(const Tensor& src, void* dst) override;
  void synchronize() override {}

  void embedding(const Weight& table, const StepContext& ctx, Tensor out) override;
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) override;
  void linear(const Tensor& x, const Weight& w, Tensor out) override;
  void rope(Tensor x, const RopeParams& rope, const StepContext& ctx) override;
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor out) override;
  void add(Tensor x, const Tensor& y) override;
  void gather_rows(const Tensor& x, const Tensor& rows, Tensor out) override;

  void kv_cache_write(const KvCacheView& cache, int layer, const Tensor& kv, const StepContext& ctx) override;
  void mla_absorb_query(const Tensor& q, const Weight& kv_b, const MlaShape& shape, Tensor q_full) override;
  void mla_attention(const Tensor& q_full, const KvCacheView& cache, int layer, const StepContext& ctx,
                     const MlaShape& shape, Tensor o_latent) override;
  void mla_expand_output(const Tensor& o_latent, const Weight& kv_b, const MlaShape& shape, Tensor o) override;

  void moe_route(const Tensor& logits, const Tensor& score_bias, const RoutingParams& params, Tensor expert_ids,
                 Tensor expert_weights, Tensor expert_counts) override;
  void moe_dispatch(const Tensor& x, const Tensor& expert_ids, const Tensor& expert_counts, Tensor x_sorted,
                    Tensor expert_offsets, Tensor row_map) override;
  void moe_grouped_mlp(const Tensor& x_sorted, const Tensor& expert_offsets, const ExpertMlpWeights& experts,
                       Tensor gate, Tensor up, Tensor y_sorted) override;
  void moe_combine(const Tensor& y_sorted, const Tensor& row_map, const Tensor& expert_ids,
                   const Tensor& expert_weights, const Tensor& shared, Tensor out) override;

 private:
  // Scratch the MLA ops reuse across calls (per-head products before they are interleaved);
  // grown to the largest step seen, so a steady state allocates nothing.
  AlignedBuffer mla_scratch_;
  float* mla_scratch(int64_t n_floats);
  // Host memory the uploaded views point into.
  std::vector<std::shared_ptr<void>> owners_;
  void retain(const std::shared_ptr<void>& owner);
};

// The routing rule for one token (MATH.md "MoE"), exposed for unit tests.
//   logits: [n_experts]; score_bias: [n_experts] or empty; ids, weights: [top_k], best first.
void route_token(std::span<const float> logits, std::span<const float> score_bias, const RoutingParams& params,
                 std::span<int32_t> ids, std::span<float> weights);

}  // namespace dsi::cpu
