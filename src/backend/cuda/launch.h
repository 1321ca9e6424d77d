#pragma once
// The kernels' launch functions (defined in the .cu files, which nvcc compiles and which
// therefore cannot use fmt), called by the checked wrappers in the .cpp files. Each enqueues
// its kernels on `stream` and returns the launch error, if any; none synchronises.
#include <cuda_runtime.h>

#include "backend/cuda/grouped_gemm.h"
#include "backend/cuda/grouped_gemv.h"
#include "backend/cuda/mla_attention.h"
#include "backend/cuda/mla_projections.h"
#include "backend/cuda/moe.h"

namespace dsi::cuda {

cudaError_t launch_mla_attention(const MlaAttentionParams& p, cudaStream_t stream);
// The tensor-core MLA attention kernel (without the split combine): whether it takes p, its launch.
bool mla_attention_mma_takes(const MlaAttentionParams& p);
cudaError_t launch_mla_attention_mma(const MlaAttentionParams& p, cudaStream_t stream);
cudaError_t launch_copy_rope_part(const MlaAbsorbParams& p, cudaStream_t stream);
cudaError_t launch_grouped_gemm(const GroupedGemmParams& p, cudaStream_t stream);
cudaError_t launch_grouped_gemv(const GroupedGemvParams& p, cudaStream_t stream);
// The tensor-core skinny kernel: whether it takes the problem, and its launch.
bool grouped_gemv_mma_takes(const GroupedGemvParams& p);
cudaError_t launch_grouped_gemv_mma(const GroupedGemvParams& p, cudaStream_t stream);
cudaError_t launch_moe_route(const MoeRouteParams& p, cudaStream_t stream);
cudaError_t launch_moe_dispatch(const MoeDispatchParams& p, cudaStream_t stream);
cudaError_t launch_moe_combine(const MoeCombineParams& p, cudaStream_t stream);
}  // namespace dsi::cuda
