// The experts' grouped GEMM (expert_gemm.h) on CUTLASS 3's Hopper grouped kernels: a setup
// kernel turns the dispatch's offsets into the per-group problem sizes, operand pointers,
// strides and (FP8) scale pointers CUTLASS reads from device memory, then one persistent launch
// walks every group's tiles. Tiles of 128 rows x 128 columns (bf16 64 deep, FP8 128) with two
// consumer warp groups (cooperative): V2-Lite's experts at prefill have ~1,500 rows each and
// 1,408 or 2,048 columns, V3's 2,048 or 7,168: whole tiles in N.
#include "backend/cuda/expert_gemm.h"

#include <string>
#include <type_traits>

#include "backend/cuda/check.h"
#include "core/int_math.h"

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
using Shape3 = typename Problem::UnderlyingProblemShape;
using Bf16 = cutlass::bfloat16_t;
using Fp8 = cutlass::float_e4m3_t;
// x_e [m, k] row-major; W_e [n, k] row-major, which is CUTLASS's B (k x n) column-major; y [m, n].
using LayoutX = cutlass::layout::RowMajor;
using LayoutW = cutlass::layout::ColumnMajor;
using LayoutY = cutlass::layout::RowMajor;
using Cluster = Shape<_1, _1, _1>;
constexpr int kAlignY = 8;  // 16 bytes of bf16

template <class Tile>
using EpilogueFor = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Tile, Cluster, cutlass::epilogue::collective::EpilogueTileAuto,
    float, float, void, LayoutY*, kAlignY, Bf16, LayoutY*, kAlignY, cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative,
    cutlass::epilogue::fusion::LinearCombination<Bf16, float, void>>::CollectiveOp;

// bf16: tiles of 128 x 128 x 64.
struct Bf16Kind {
  using Element = Bf16;
  static constexpr bool kFp8 = false;
  static constexpr int kAlign = 8;
  using Tile = Shape<_128, _128, _64>;
  using Epilogue = EpilogueFor<Tile>;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Bf16, LayoutX*, kAlign, Bf16, LayoutW*, kAlign, float, Tile,
      Cluster, cutlass::gemm::collective::StageCountAutoCarveout<int(sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<Problem, Mainloop, Epilogue>;
  using LayoutSFA = int;  // (no scales)
  using LayoutSFB = int;
};

// FP8 with block scales: one per row and 128 of K for x, per 128 x 128 block for W, both
// K-major (consecutive K blocks adjacent), applied to each 128-deep slice's f32 partial sums.
struct Fp8Kind {
  using Element = Fp8;
  static constexpr bool kFp8 = true;
  static constexpr int kAlign = 16;
  using Tile = Shape<_128, _128, _128>;
  using Scales = cutlass::detail::Sm90BlockwiseScaleConfig<1, 128, 128, cute::GMMA::Major::K, cute::GMMA::Major::K>;
  using LayoutSFA = decltype(Scales::deduce_layoutSFA());
  using LayoutSFB = decltype(Scales::deduce_layoutSFB());
  using Epilogue = EpilogueFor<Tile>;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Fp8, cute::tuple<LayoutX*, LayoutSFA*>, kAlign, Fp8,
      cute::tuple<LayoutW*, LayoutSFB*>, kAlign, float, Tile, Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<int(sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperativeFP8Blockwise>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<Problem, Mainloop, Epilogue>;
};

constexpr size_t align_up(size_t v) { return size_t(dsi::round_up(int64_t(v), 256)); }

// The arrays CUTLASS reads, carved in this order from the caller's workspace, then its own
// workspace.
template <class K>
struct Arrays {
  using E = typename K::Element;
  using StrideX = typename K::Kernel::InternalStrideA;
  using StrideW = typename K::Kernel::InternalStrideB;
  using StrideY = typename K::Kernel::InternalStrideD;
  Shape3* problems = nullptr;
  const E** x = nullptr;
  const E** w = nullptr;
  Bf16** y = nullptr;
  StrideX* x_stride = nullptr;
  StrideW* w_stride = nullptr;
  StrideY* y_stride = nullptr;
  const float** x_scale = nullptr;
  const float** w_scale = nullptr;
  typename K::LayoutSFA* x_scale_layout = nullptr;
  typename K::LayoutSFB* w_scale_layout = nullptr;
  void* cutlass_workspace = nullptr;

  // Carves from base (nullptr: only counts); returns the bytes before CUTLASS's workspace.
  size_t carve(void* base, int n_problems) {
    auto* p = static_cast<unsigned char*>(base);
    size_t at = 0;
    const size_t n = size_t(n_problems);
    auto take = [&](auto*& field, size_t elem_bytes) {
      using T = std::remove_reference_t<decltype(field)>;
      field = p ? reinterpret_cast<T>(p + at) : nullptr;
      at += align_up(n * elem_bytes);
    };
    take(problems, sizeof(Shape3));
    take(x, sizeof(void*));
    take(w, sizeof(void*));
    take(y, sizeof(void*));
    take(x_stride, sizeof(StrideX));
    take(w_stride, sizeof(StrideW));
    take(y_stride, sizeof(StrideY));
    if constexpr (K::kFp8) {
      take(x_scale, sizeof(void*));
      take(w_scale, sizeof(void*));
      take(x_scale_layout, sizeof(typename K::LayoutSFA));
      take(w_scale_layout, sizeof(typename K::LayoutSFB));
    }
    cutlass_workspace = p ? p + at : nullptr;
    return at;
  }
};

template <class K>
using GemmOf = cutlass::gemm::device::GemmUniversalAdapter<typename K::Kernel>;

template <class K>
typename GemmOf<K>::Arguments arguments(const Arrays<K>& a, int n_problems, int sm_count) {
  cutlass::KernelHardwareInfo hw;
  hw.device_id = 0;  // only read when sm_count is 0
  hw.sm_count = sm_count;
  typename GemmOf<K>::Arguments args;
  args.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
  args.problem_shape = {n_problems, a.problems, nullptr};
  if constexpr (K::kFp8)
    args.mainloop = {a.x, a.x_stride, a.w, a.w_stride, a.x_scale, a.x_scale_layout, a.w_scale, a.w_scale_layout};
  else
    args.mainloop = {a.x, a.x_stride, a.w, a.w_stride};
  args.epilogue = {{}, nullptr, nullptr, a.y, a.y_stride};
  args.epilogue.thread.alpha = 1.0f;
  args.epilogue.thread.beta = 0.0f;
  args.hw_info = hw;
  return args;
}

template <class K>
struct SetupParams {
  ExpertGemmParams p;
  Arrays<K> a;
};

// Problem i = matrix (i / n_experts), expert (i % n_experts): its rows, operands, strides and
// (FP8) scales.
template <class K>
__global__ void expert_gemm_setup_kernel(SetupParams<K> s) {
  detail::pdl_begin();
  using E = typename K::Element;
  const ExpertGemmParams& p = s.p;
  Arrays<K>& a = s.a;
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= p.n_experts * p.n_mats) return;
  const int e = i % p.n_experts;
  const ExpertGemmMatrix& mat = p.mats[i / p.n_experts];
  const int r0 = p.row_offsets[e], m = p.row_offsets[e + 1] - r0;
  const int n = int(p.n), k = int(p.k);
  a.problems[i] = Shape3{m, n, k};
  a.x[i] = static_cast<const E*>(p.x) + int64_t(r0) * k;
  a.w[i] = static_cast<const E*>(mat.w) + int64_t(e) * mat.group_stride;
  a.y[i] = static_cast<Bf16*>(mat.y) + int64_t(r0) * n;
  a.x_stride[i] = cutlass::make_cute_packed_stride(typename Arrays<K>::StrideX{}, {m, k, 1});
  a.w_stride[i] = cutlass::make_cute_packed_stride(typename Arrays<K>::StrideW{}, {n, k, 1});
  a.y_stride[i] = cutlass::make_cute_packed_stride(typename Arrays<K>::StrideY{}, {m, n, 1});
  if constexpr (K::kFp8) {
    a.x_scale[i] = p.x_scale + int64_t(r0) * (k / 128);
    a.w_scale[i] = mat.scale + int64_t(e) * mat.scale_group_stride;
    a.x_scale_layout[i] = K::Scales::tile_atom_to_shape_SFA(make_shape(m, n, k, 1));
    a.w_scale_layout[i] = K::Scales::tile_atom_to_shape_SFB(make_shape(m, n, k, 1));
  }
}

void check_status(cutlass::Status st, const char* what) {
  if (st != cutlass::Status::kSuccess)
    fail_argument(std::string("cuda::expert_gemm: ") + what + ": " + cutlassGetStatusString(st));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class K>
size_t workspace_bytes(int n_problems, int sm_count) {
  Arrays<K> none;
  const size_t arrays = none.carve(nullptr, n_problems);
  return arrays + align_up(GemmOf<K>::get_workspace_size(arguments(none, n_problems, sm_count)));
}

template <class K>
void run(const ExpertGemmParams& p, void* workspace, int sm_count, cudaStream_t stream) {
  const int n_problems = p.n_experts * p.n_mats;
  Arrays<K> a;
  a.carve(workspace, n_problems);
  constexpr int kSetupThreads = 128;
  const SetupParams<K> setup{p, a};
  const unsigned blocks = unsigned((n_problems + kSetupThreads - 1) / kSetupThreads);
  DSI_CUDA_CHECK(detail::launch(expert_gemm_setup_kernel<K>, blocks, kSetupThreads, 0, stream, setup));
  GemmOf<K> gemm;
  const auto args = arguments(a, n_problems, sm_count);
  check_status(gemm.can_implement(args), "can_implement");
  check_status(gemm.initialize(args, a.cutlass_workspace, stream), "initialize");
  check_status(gemm.run(stream), "run");
  DSI_CUDA_CHECK_LAUNCH(stream, "expert_gemm");
}

}  // namespace

bool expert_gemm_built() { return true; }

bool expert_gemm_takes(const ExpertGemmParams& p) {
  if (p.n_experts < 1 || p.n_mats < 1 || p.n_mats > 2 || p.n < 1 || p.k < 1) return false;
  if (p.n % 8 != 0 || p.k % (p.fp8 ? 128 : 8) != 0 || p.n > (int64_t(1) << 30) || p.k > (int64_t(1) << 30))
    return false;
  if (!aligned16(p.x) || (p.fp8 && !p.x_scale)) return false;
  for (int m = 0; m < p.n_mats; ++m) {
    const ExpertGemmMatrix& w = p.mats[m];
    if (!aligned16(w.w) || !aligned16(w.y) || w.group_stride % 16 != 0) return false;
    if (p.fp8 && (!w.scale || w.scale_group_stride < ceil_div(p.n, 128) * (p.k / 128))) return false;
  }
  return true;
}

size_t expert_gemm_workspace_bytes(bool fp8, int n_experts, int n_mats, int sm_count) {
  const int n_problems = n_experts * n_mats;
  return fp8 ? workspace_bytes<Fp8Kind>(n_problems, sm_count) : workspace_bytes<Bf16Kind>(n_problems, sm_count);
}

void expert_gemm(const ExpertGemmParams& p, void* workspace, size_t workspace_bytes, int sm_count,
                 cudaStream_t stream) {
  if (!expert_gemm_takes(p)) fail_argument("cuda::expert_gemm: sizes or alignment it does not take");
  if (!p.row_offsets || !p.x) fail_argument("cuda::expert_gemm: a device pointer is missing");
  if (workspace_bytes < expert_gemm_workspace_bytes(p.fp8, p.n_experts, p.n_mats, sm_count))
    fail_argument("cuda::expert_gemm: workspace too small");
  if (p.fp8) run<Fp8Kind>(p, workspace, sm_count, stream);
  else run<Bf16Kind>(p, workspace, sm_count, stream);
}

#else  // built without CUTLASS

bool expert_gemm_built() { return false; }
bool expert_gemm_takes(const ExpertGemmParams&) { return false; }
size_t expert_gemm_workspace_bytes(bool, int, int, int) { return 0; }
void expert_gemm(const ExpertGemmParams&, void*, size_t, int, cudaStream_t) {
  fail_argument("cuda::expert_gemm: this build has no CUTLASS (scripts/setup.sh installs its headers)");
}

#endif

}  // namespace dsi::cuda
