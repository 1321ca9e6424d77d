// The experts' grouped GEMM (expert_gemm.h) on CUTLASS 3's Hopper grouped kernel: a setup
// kernel turns the dispatch's offsets into the per-group problem sizes, operand pointers and
// strides CUTLASS reads from device memory, then one persistent launch walks every group's
// tiles. Tile 128 x 128 x 64 with two consumer warp groups (cooperative): V2-Lite's experts at
// prefill have ~1,500 rows each and 1,408 or 2,048 columns, whole tiles in N.
#include "backend/cuda/expert_gemm.h"

#include <string>

#include "backend/cuda/check.h"

#ifdef DSINFER_HAVE_CUTLASS
#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/util/packed_stride.hpp>

#include "backend/cuda/pdl.cuh"
#endif

namespace dsi::cuda {

#ifdef DSINFER_HAVE_CUTLASS

namespace {

using namespace cute;

using Problem = cutlass::gemm::GroupProblemShape<Shape<int, int, int>>;  // (m, n, k) per group
using Bf16 = cutlass::bfloat16_t;
// x_e [m, k] row-major; W_e [n, k] row-major, which is CUTLASS's B (k x n) column-major; y [m, n].
using LayoutX = cutlass::layout::RowMajor;
using LayoutW = cutlass::layout::ColumnMajor;
using LayoutY = cutlass::layout::RowMajor;
constexpr int kAlign = 8;  // elements of 16 bytes
using Tile = Shape<_128, _128, _64>;
using Cluster = Shape<_1, _1, _1>;

using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Tile, Cluster, cutlass::epilogue::collective::EpilogueTileAuto,
    float, float, void, LayoutY*, kAlign, Bf16, LayoutY*, kAlign, cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative,
    cutlass::epilogue::fusion::LinearCombination<Bf16, float, void>>::CollectiveOp;

using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Bf16, LayoutX*, kAlign, Bf16, LayoutW*, kAlign, float, Tile,
    Cluster, cutlass::gemm::collective::StageCountAutoCarveout<int(sizeof(typename Epilogue::SharedStorage))>,
    cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;

using Kernel = cutlass::gemm::kernel::GemmUniversal<Problem, Mainloop, Epilogue>;
using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
using StrideX = typename Kernel::InternalStrideA;
using StrideW = typename Kernel::InternalStrideB;
using StrideY = typename Kernel::InternalStrideD;
using Shape3 = typename Problem::UnderlyingProblemShape;

// The arrays CUTLASS reads, carved from the caller's workspace.
struct Arrays {
  Shape3* problems;
  const Bf16** x;
  const Bf16** w;
  Bf16** y;
  StrideX* x_stride;
  StrideW* w_stride;
  StrideY* y_stride;
  void* cutlass_workspace;
};

constexpr size_t align_up(size_t v) { return (v + 255) / 256 * 256; }

Arrays carve(void* base, int n_problems) {
  auto* p = static_cast<unsigned char*>(base);
  Arrays a{};
  size_t at = 0;
  auto take = [&](size_t bytes) {
    void* r = p + at;
    at += align_up(bytes);
    return r;
  };
  const size_t n = size_t(n_problems);
  a.problems = static_cast<Shape3*>(take(n * sizeof(Shape3)));
  a.x = static_cast<const Bf16**>(take(n * sizeof(void*)));
  a.w = static_cast<const Bf16**>(take(n * sizeof(void*)));
  a.y = static_cast<Bf16**>(take(n * sizeof(void*)));
  a.x_stride = static_cast<StrideX*>(take(n * sizeof(StrideX)));
  a.w_stride = static_cast<StrideW*>(take(n * sizeof(StrideW)));
  a.y_stride = static_cast<StrideY*>(take(n * sizeof(StrideY)));
  a.cutlass_workspace = p + at;
  return a;
}

size_t arrays_bytes(int n_problems) {
  const size_t n = size_t(n_problems);
  return align_up(n * sizeof(Shape3)) + 3 * align_up(n * sizeof(void*)) + align_up(n * sizeof(StrideX)) +
         align_up(n * sizeof(StrideW)) + align_up(n * sizeof(StrideY));
}

typename Gemm::Arguments arguments(const Arrays& a, int n_problems, int sm_count) {
  cutlass::KernelHardwareInfo hw;
  hw.device_id = 0;  // only read when sm_count is 0
  hw.sm_count = sm_count;
  typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGrouped,
                                {n_problems, a.problems, nullptr},
                                {a.x, a.x_stride, a.w, a.w_stride},
                                {{}, nullptr, nullptr, a.y, a.y_stride},
                                hw};
  args.epilogue.thread.alpha = 1.0f;
  args.epilogue.thread.beta = 0.0f;
  return args;
}

// Problem i = matrix (i / n_experts), expert (i % n_experts): its rows, operands and strides.
struct SetupParams {
  ExpertGemmParams p;
  Arrays a;
};

__global__ void expert_gemm_setup_kernel(SetupParams s) {
  detail::pdl_begin();
  const ExpertGemmParams& p = s.p;
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= p.n_experts * p.n_mats) return;
  const int e = i % p.n_experts;
  const ExpertGemmMatrix& mat = p.mats[i / p.n_experts];
  const int r0 = p.row_offsets[e], m = p.row_offsets[e + 1] - r0;
  const int n = int(p.n), k = int(p.k);
  s.a.problems[i] = Shape3{m, n, k};
  s.a.x[i] = static_cast<const Bf16*>(p.x) + int64_t(r0) * k;
  s.a.w[i] = static_cast<const Bf16*>(mat.w) + int64_t(e) * mat.group_stride;
  s.a.y[i] = static_cast<Bf16*>(mat.y) + int64_t(r0) * n;
  s.a.x_stride[i] = cutlass::make_cute_packed_stride(StrideX{}, {m, k, 1});
  s.a.w_stride[i] = cutlass::make_cute_packed_stride(StrideW{}, {n, k, 1});
  s.a.y_stride[i] = cutlass::make_cute_packed_stride(StrideY{}, {m, n, 1});
}

void check_status(cutlass::Status st, const char* what) {
  if (st != cutlass::Status::kSuccess)
    fail_argument(std::string("cuda::expert_gemm: ") + what + ": " + cutlassGetStatusString(st));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool expert_gemm_built() { return true; }

bool expert_gemm_takes(const ExpertGemmParams& p) {
  if (p.n_experts < 1 || p.n_mats < 1 || p.n_mats > 2 || p.n < 1 || p.k < 1) return false;
  if (p.n % kAlign != 0 || p.k % kAlign != 0 || p.n > (int64_t(1) << 30) || p.k > (int64_t(1) << 30)) return false;
  if (!aligned16(p.x)) return false;
  for (int m = 0; m < p.n_mats; ++m)
    if (!aligned16(p.mats[m].w) || !aligned16(p.mats[m].y) || p.mats[m].group_stride % kAlign != 0) return false;
  return true;
}

size_t expert_gemm_workspace_bytes(int n_experts, int n_mats, int sm_count) {
  const int n_problems = n_experts * n_mats;
  Arrays none{};
  return arrays_bytes(n_problems) + align_up(Gemm::get_workspace_size(arguments(none, n_problems, sm_count)));
}

void expert_gemm(const ExpertGemmParams& p, void* workspace, size_t workspace_bytes, int sm_count,
                 cudaStream_t stream) {
  if (!expert_gemm_takes(p)) fail_argument("cuda::expert_gemm: sizes or alignment it does not take");
  if (!p.row_offsets || !p.x) fail_argument("cuda::expert_gemm: a device pointer is missing");
  const int n_problems = p.n_experts * p.n_mats;
  if (workspace_bytes < expert_gemm_workspace_bytes(p.n_experts, p.n_mats, sm_count))
    fail_argument("cuda::expert_gemm: workspace too small");
  const Arrays a = carve(workspace, n_problems);
  constexpr int kSetupThreads = 128;
  const SetupParams setup{p, a};
  const unsigned blocks = unsigned((n_problems + kSetupThreads - 1) / kSetupThreads);
  DSI_CUDA_CHECK(detail::launch(expert_gemm_setup_kernel, blocks, kSetupThreads, 0, stream, setup));
  Gemm gemm;
  const typename Gemm::Arguments args = arguments(a, n_problems, sm_count);
  check_status(gemm.can_implement(args), "can_implement");
  check_status(gemm.initialize(args, a.cutlass_workspace, stream), "initialize");
  check_status(gemm.run(stream), "run");
  DSI_CUDA_CHECK_LAUNCH(stream, "expert_gemm");
}

#else  // built without CUTLASS

bool expert_gemm_built() { return false; }
bool expert_gemm_takes(const ExpertGemmParams&) { return false; }
size_t expert_gemm_workspace_bytes(int, int, int) { return 0; }
void expert_gemm(const ExpertGemmParams&, void*, size_t, int, cudaStream_t) {
  fail_argument("cuda::expert_gemm: this build has no CUTLASS (scripts/setup.sh installs its headers)");
}

#endif

}  // namespace dsi::cuda
