#pragma once
// The CUDA backend: the model's ops (backend/backend.h) on one GPU, stream-ordered on the
// backend's own non-blocking stream, over the kernels of this folder and cuBLASLt.
//
// Memory: every allocation is a cudaMalloc the backend (or the Buffer it returns) owns.
// Weights are copied at upload through pinned staging and converted once to what the ops
// compute with: dense matrices become the activation dtype (bf16, or f32 in the strict
// --dtype float32 mode; FP8 block-scaled matrices are dequantised on the GPU), routed experts
// are stacked per projection into one allocation and keep their dtype (FP8 experts keep their
// codes and 128x128 block scales: the grouped GEMM scales them itself).
// Threads: one thread at a time (the engine's); the entry points that start a step or move
// memory make this backend's GPU current on the calling thread first.
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/backend_factory.h"
#include "backend/cuda/device.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/grouped_gemv.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/op_timer.h"
#include "backend/cuda/step_graphs.h"
#include "backend/cuda/stream.h"

namespace dsi::cuda {

class CudaBackend final : public Backend {
 public:
  // options.dtype / kv_cache_dtype are "float32" or "bfloat16" (the factory resolved them).
  explicit CudaBackend(const BackendOptions& options);
  ~CudaBackend() override;

  std::string name() const override { return name_; }
  DType activation_dtype() const override { return act_; }
  DType kv_dtype() const override { return kv_; }
  DeviceMemory device_memory() override;
  void* native_stream() override {
    bind();
    return stream();
  }
  const DeviceInfo& info() const { return info_; }

  Buffer alloc(DType dtype, int64_t rows, int64_t cols) override;
  Buffer alloc_staging(DType dtype, int64_t rows, int64_t cols) override;
  Weight upload(const Weight& host, const std::shared_ptr<void>& host_owner) override;
  std::optional<Weight> upload_stacked(std::span<const Weight> host, const std::shared_ptr<void>& host_owner) override;
  Tensor upload_vector(const Tensor& host, const std::shared_ptr<void>& host_owner) override;
  ExpertWeight upload_experts(std::span<const Weight> host, const std::shared_ptr<void>& host_owner) override;
  void copy_from_host(const void* src, Tensor dst) override;
  void copy_to_host(const Tensor& src, void* dst) override;
  void synchronize() override;
  void begin_op_timing() override;
  std::vector<OpTiming> end_op_timing() override;
  bool records_steps() const override { return !options_.enforce_eager; }
  bool has_device_sampler() const override { return true; }
  void sample(const Tensor& logits, std::span<const sampling::SamplingRow> rows,
              std::span<const sampling::SamplingPenalty> penalties,
              std::span<sampling::SamplingResult> results) override;
  void run_recorded(uint64_t key, const std::function<void()>& ops) override;
  int64_t n_recorded() const override { return graphs_.n_graphs(); }

  void embedding(const Weight& table, const StepContext& ctx, Tensor out) override;
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) override;
  void add_rms_norm(Tensor x, const Tensor& y, const Tensor& weight, float eps, Tensor out) override;
  void linear(const Tensor& x, const Weight& w, Tensor out) override;
  void rope(Tensor x, const dsi::RopeParams& rope, const StepContext& ctx) override;
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor out) override;
  void add(Tensor x, const Tensor& y) override;
  void gather_rows(const Tensor& x, const Tensor& rows, Tensor out) override;

  void kv_cache_write(const KvCacheView& cache, int layer, const Tensor& kv, const StepContext& ctx) override;
  void mla_rope_norm_cache(Tensor q, Tensor kv, const MlaRopeNorm& p, const KvCacheView& cache, int layer,
                           const StepContext& ctx) override;
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
  void bind() const;  // makes this backend's GPU current on the calling thread
  cudaStream_t stream() const { return stream_->get(); }
  // Host rows (any row stride) into device memory at dst, packed, through pinned staging;
  // returns when `host` may be reused.
  void upload_rows(void* dst, const Tensor& host);
  // Prefill-sized MoE: one cuBLASLt product per expert and matrix, sized from the expert
  // offsets copied to the host (moe_grouped_mlp decides when).
  // MLA attention of a prefill step by cuBLASLt products (mla_prefill_ops.cpp); false, having
  // done nothing, where the step does not suit them (then the attention kernel runs).
  bool mla_attention_by_products(const Tensor& q_full, const KvCacheView& cache, int layer, const StepContext& ctx,
                                 const MlaShape& s, Tensor o_latent);
  void moe_experts_per_expert(const Tensor& x_sorted, const Tensor& expert_offsets, const ExpertMlpWeights& experts,
                              Tensor gate, Tensor up, Tensor y_sorted);
  // Prefill-sized MoE with bf16 or (W8A8) FP8 experts: CUTLASS's grouped GEMM (expert_gemm.h),
  // sized on the device; false, having done nothing, where this build, the switch or the
  // shapes do not allow it.
  bool moe_experts_grouped(const Tensor& x_sorted, const Tensor& expert_offsets, const ExpertMlpWeights& experts,
                           Tensor gate, Tensor up, Tensor y_sorted);
  // A device copy of host rows (packed) in their own dtype.
  std::shared_ptr<DeviceBuffer> to_device(const Tensor& host);
  // `src` (device, f32 or bf16) converted into a new allocation of dtype `to`.
  Buffer converted(const Tensor& src, DType to);
  Buffer upload_dense(const Weight& host);  // a weight in the activation dtype, not yet kept
  Weight keep(Buffer b);  // a dense weight over b, alive as long as the backend
  OpTimer::Scope timed(const char* op) { return timer_.scope(op, stream()); }

  BackendOptions options_;
  DeviceInfo info_;
  std::string name_;
  DType act_ = DType::bf16, kv_ = DType::bf16;
  int64_t free_at_start_ = 0;  // device memory free before this backend allocated anything
  std::unique_ptr<Stream> stream_;
  DeviceBuffer gemm_workspace_;
  std::unique_ptr<GemmContext> gemm_;
  std::unique_ptr<PinnedStaging> staging_;
  // Split-KV attention scratch, sized once for the largest split the picker can choose.
  DeviceBuffer attention_scratch_;
  int64_t attention_scratch_floats_ = 0;
  // Prefill attention by products: a sequence's gathered cache rows and a chunk's scores and
  // probabilities (kPrefillAttentionScratchBytes, cuda_backend.cpp).
  DeviceBuffer prefill_attention_scratch_;
  // One FP8 expert matrix widened to bf16 for its prefill product (moe_experts_per_expert),
  // allocated at the first such step.
  DeviceBuffer expert_scratch_;
  // The grouped GEMM's problem arrays and CUTLASS workspace (moe_experts_grouped), and for FP8
  // experts the activations' codes and scales, grown at need. Off until measured on a GPU
  // (docs/design/cuda_notes.md, session 9): DSINFER_CUDA_EXPERT_GEMM=cutlass turns it on, and
  // for FP8 experts it quantises the activations (W8A8, not within bf16 rounding of the CPU).
  DeviceBuffer expert_gemm_workspace_, expert_fp8_activations_;
  bool expert_gemm_ = false;
  // Decode-shaped products take the skinny kernels (grouped_gemv.h); DSINFER_CUDA_SKINNY=0 turns
  // them off and =fma picks the CUDA-core kernel, so a benchmark can compare the paths in one run.
  SkinnyKernel skinny_ = SkinnyKernel::tensor_cores;
  // MLA attention on tensor cores where the shape allows (mla_attention_mma.cu);
  // DSINFER_CUDA_MLA=fma keeps the CUDA-core kernel, for the same comparison.
  bool mla_tensor_cores_ = true;
  // Dense linear layers of up to this many rows take the skinny kernel, cuBLASLt above
  // (skinny_limits; DSINFER_CUDA_SKINNY_LINEAR_ROWS overrides it, to measure the crossover).
  int64_t linear_skinny_rows_ = 0;
  OpTimer timer_;
  StepGraphs graphs_;  // decode steps as CUDA graphs (run_recorded)
  // The device sampler's per-step records (sample()): grown geometrically at the first steps
  // that need more, never inside a recorded step.
  DeviceBuffer sample_rows_, sample_penalties_, sample_results_;
  // Uploaded weights, alive as long as the backend.
  std::vector<std::shared_ptr<void>> owned_;
};

}  // namespace dsi::cuda
