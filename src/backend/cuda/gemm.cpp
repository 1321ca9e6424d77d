// cuBLASLt GEMMs (gemm.h). Row-major y[n, out] = x[n, in] W^T is, read column-major, the
// "TN" product D[out, n] = op(A) B with A = W stored [in, out] (ld = W's row stride, transposed)
// and B = x stored [in, n] (ld = x's row stride): no copies, and the layout cuBLASLt requires
// for FP8.
#include "backend/cuda/gemm.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "backend/cuda/check.h"
#include "core/error.h"
#include "core/int_math.h"

namespace dsi::cuda {

namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::f8_e4m3: return CUDA_R_8F_E4M3;
    default: fail("gemm: dtype {} has no cuBLASLt type", dtype_name(t));
  }
}

// The largest power of two (up to 256) dividing the address: what the heuristic may assume.
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al >>= 1;
  return al;
}

struct PlanKey {
  DType x, w, y;
  int64_t n, in, out, ldx, ldw, ldy;
  uint32_t align_x, align_w, align_y;
  bool w_transposed;
  int batch;
  int64_t x_batch_stride, w_batch_stride, y_batch_stride;
  bool operator==(const PlanKey&) const = default;
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    size_t h = 0;
    auto mix = [&](uint64_t v) { h ^= std::hash<uint64_t>{}(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2); };
    mix(uint64_t(k.x) | uint64_t(k.w) << 8 | uint64_t(k.y) << 16);
    for (int64_t v : {k.n, k.in, k.out, k.ldx, k.ldw, k.ldy}) mix(uint64_t(v));
    mix(uint64_t(k.align_x) | uint64_t(k.align_w) << 16 | uint64_t(k.align_y) << 32 | uint64_t(k.w_transposed) << 48);
    for (int64_t v : {int64_t(k.batch), k.x_batch_stride, k.w_batch_stride, k.y_batch_stride}) mix(uint64_t(v));
    return h;
  }
};

// Descriptors and the chosen algorithm of one problem shape; destroyed with the context.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool fp8 = false;
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (d) (void)cublasLtMatrixLayoutDestroy(d);
    if (b) (void)cublasLtMatrixLayoutDestroy(b);
    if (a) (void)cublasLtMatrixLayoutDestroy(a);
    if (desc) (void)cublasLtMatmulDescDestroy(desc);
  }
};

template <class T>
void set_attr(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& value) {
  DSI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value)));
}

}  // namespace

struct GemmContext::Impl {
  Fp8ScaleOrder fp8_order{};
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::unordered_map<PlanKey, std::unique_ptr<Plan>, PlanKeyHash> plans;

  // The FP8 scale pointers are set before the heuristic: cuBLASLt refuses block-scaled
  // problems without them (CUBLAS_STATUS_INVALID_VALUE).
  Plan& plan_for(const PlanKey& k, const GemmParams& p);
};

GemmContext::GemmContext(void* workspace, size_t workspace_bytes, const Fp8ScaleOrder& fp8_order)
    : impl_(std::make_unique<Impl>()) {
  impl_->fp8_order = fp8_order;
  impl_->workspace = workspace;
  impl_->workspace_bytes = workspace ? workspace_bytes : 0;
  DSI_CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
}

GemmContext::~GemmContext() {
  impl_->plans.clear();
  if (impl_->handle) (void)cublasLtDestroy(impl_->handle);
}

size_t GemmContext::n_plans() const { return impl_->plans.size(); }

// Plans kept at most: prefill's per-expert products (one row count per expert) and attention's
// products over prompts of every length make new shapes without end, so past this many the
// cache starts again (a plan is a few hundred bytes; rebuilding one costs a heuristic query).
constexpr size_t kMaxPlans = 16384;

Plan& GemmContext::Impl::plan_for(const PlanKey& k, const GemmParams& p) {
  auto it = plans.find(k);
  if (it != plans.end()) return *it->second;
  if (plans.size() >= kMaxPlans) plans.clear();
  // f32 weights are the strict mode (--dtype float32): pedantic f32 first, else plain
  // CUBLAS_COMPUTE_32F, which in cuBLASLt never uses TF32 either (only ..._FAST_TF32 does).
  std::vector<cublasComputeType_t> computes{CUBLAS_COMPUTE_32F};
  if (k.w == DType::f32) computes.insert(computes.begin(), CUBLAS_COMPUTE_32F_PEDANTIC);
  std::unique_ptr<Plan> plan;
  cublasLtMatmulHeuristicResult_t result{};
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  for (cublasComputeType_t compute : computes) {
    plan = std::make_unique<Plan>();
    plan->fp8 = k.w == DType::f8_e4m3;
    DSI_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, compute, CUDA_R_32F));
    // A transposed W is already the column-major [out, in] cuBLASLt wants for A: no op.
    set_attr(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, k.w_transposed ? CUBLAS_OP_N : CUBLAS_OP_T);
    set_attr(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
    if (plan->fp8) {
      // Block scaling: D = sum_k (A_q * a_scale)(B_q * b_scale), the scales applied per 128-deep
      // slice of K inside the kernel, accumulating in f32 (no fast accumulation).
      const int32_t a_mode = fp8_order.weight_per_row ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
                                                      : CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
      set_attr(plan->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, a_mode);
      set_attr(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, int32_t(CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F));
      set_attr(plan->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(p.w_scale));
      set_attr(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(p.x_scale));
      set_attr(plan->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, int8_t(0));
    }
    const uint64_t a_rows = uint64_t(k.w_transposed ? k.out : k.in), a_cols = uint64_t(k.w_transposed ? k.in : k.out);
    DSI_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, cuda_type(k.w), a_rows, a_cols, k.ldw));
    DSI_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, cuda_type(k.x), uint64_t(k.in), uint64_t(k.n), k.ldx));
    DSI_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->d, cuda_type(k.y), uint64_t(k.out), uint64_t(k.n), k.ldy));
    if (k.batch > 1) {
      auto set_batch = [&](cublasLtMatrixLayout_t l, int64_t stride) {
        const int32_t count = k.batch;
        DSI_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
        DSI_CUBLAS_CHECK(
            cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
      };
      set_batch(plan->a, k.w_batch_stride);
      set_batch(plan->b, k.x_batch_stride);
      set_batch(plan->d, k.y_batch_stride);
    }

    cublasLtMatmulPreference_t pref = nullptr;
    DSI_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    auto set_pref = [&](cublasLtMatmulPreferenceAttributes_t attr, auto value) {
      DSI_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)));
    };
    set_pref(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(workspace_bytes));
    set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, k.align_w);
    set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, k.align_x);
    set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, k.align_y);
    set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, k.align_y);
    int n_results = 0;
    st = cublasLtMatmulAlgoGetHeuristic(handle, plan->desc, plan->a, plan->b, plan->d, plan->d, pref, 1, &result,
                                        &n_results);
    (void)cublasLtMatmulPreferenceDestroy(pref);
    if (st == CUBLAS_STATUS_SUCCESS && n_results > 0) break;
    if (st == CUBLAS_STATUS_SUCCESS) st = CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (st != CUBLAS_STATUS_SUCCESS)
    fail("gemm: cuBLASLt has no algorithm for x [{}, {}] {} (ld {}) times W [{}, {}] {} (ld {}) into {} (ld {}): {}", k.n,
         k.in, dtype_name(k.x), k.ldx, k.out, k.in, dtype_name(k.w), k.ldw, dtype_name(k.y), k.ldy,
         cublasLtGetStatusName(st));
  plan->algo = result.algo;
  return *plans.emplace(k, std::move(plan)).first->second;
}

namespace {

void check_operand(const Tensor& t, int64_t rows, int64_t cols, const char* name) {
  if (t.rows != rows || t.cols != cols)
    fail("gemm: {} is [{}, {}], expected [{}, {}]", name, t.rows, t.cols, rows, cols);
  if (t.data == nullptr) fail("gemm: {} has no data", name);
  if (t.row_stride < t.cols) fail("gemm: {} has row stride {} < {} columns", name, t.row_stride, t.cols);
}

// Whether [a, a + a_bytes) and [b, b + b_bytes) share memory.
bool overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

// The bytes a batch of `batch` such tensors `stride` elements apart spans.
size_t span_bytes(const Tensor& t, int batch = 1, int64_t stride = 0) {
  return t.rows == 0 ? 0 : size_t((t.rows - 1) * t.row_stride + t.cols + (batch - 1) * stride) * dtype_size(t.dtype);
}

}  // namespace

void gemm(GemmContext& ctx, const GemmParams& p, cudaStream_t stream) {
  const bool wt_t = p.w_transposed;
  const int64_t n = p.x.rows, in = wt_t ? p.w.rows : p.w.cols, out = wt_t ? p.w.cols : p.w.rows;
  const DType wt = p.w.dtype, xt = p.x.dtype, yt = p.y.dtype;
  if (wt != DType::bf16 && wt != DType::f32 && wt != DType::f8_e4m3)
    fail("gemm: weight dtype {} is not bf16, f32 or f8_e4m3", dtype_name(wt));
  if (xt != wt) fail("gemm: x is {} but the weight is {} (quantise or convert x first)", dtype_name(xt), dtype_name(wt));
  if (yt != DType::f32 && yt != DType::bf16) fail("gemm: y is {}, expected f32 or bf16", dtype_name(yt));
  if (wt == DType::f32 && yt != DType::f32) fail("gemm: f32 inputs need an f32 output, got {}", dtype_name(yt));
  if (wt_t && wt == DType::f8_e4m3) fail("gemm: an FP8 weight cannot be transposed (cuBLASLt's FP8 is TN only)");
  if (n == 0 || out == 0) return;
  if (wt_t) check_operand(p.w, in, out, "W^T");
  else check_operand(p.w, out, in, "W");
  check_operand(p.x, n, in, "x");
  check_operand(p.y, n, out, "y");
  if (p.batch < 1) fail("gemm: a batch of {} products", p.batch);
  if (p.batch > 1 && (wt == DType::f8_e4m3 || p.x_batch_stride < 0 || p.w_batch_stride < 0 || p.y_batch_stride < 0))
    fail("gemm: a strided batch needs bf16 or f32 operands and strides >= 0");
  // (The outputs of a batch are not checked against each other: distinct heads' columns of one
  // row interleave, as MLA's per-head products do.)
  const size_t y_span = span_bytes(p.y, p.batch, p.y_batch_stride);
  if (overlaps(p.y.data, y_span, p.x.data, span_bytes(p.x, p.batch, p.x_batch_stride)) ||
      overlaps(p.y.data, y_span, p.w.data, span_bytes(p.w, p.batch, p.w_batch_stride)))
    fail("gemm: y overlaps an input");
  if (wt == DType::f8_e4m3) {
    if (!fp8_gemm_supported(out, in))
      fail("gemm: an FP8 weight [{}, {}] needs both dims multiples of 128 (widen it to bf16 instead)", out, in);
    if (!p.x_scale || !p.w_scale) fail("gemm: FP8 operands need x_scale and w_scale");
    // cuBLASLt needs 16-byte aligned FP8 rows.
    if (p.x.row_stride % 16 != 0 || p.w.row_stride % 16 != 0)
      fail("gemm: FP8 row strides {} (x) and {} (W) must be multiples of 16", p.x.row_stride, p.w.row_stride);
  }
  const PlanKey key{xt,          wt,          yt, n, in, out, p.x.row_stride, p.w.row_stride, p.y.row_stride,
                    alignment_of(p.x.data), alignment_of(p.w.data), alignment_of(p.y.data), wt_t,
                    p.batch,     p.x_batch_stride, p.w_batch_stride, p.y_batch_stride};
  auto& impl = *ctx.impl_;
  Plan& plan = impl.plan_for(key, p);
  if (plan.fp8) {
    // Scale pointers are per call; the rest of the descriptor is the cached plan.
    set_attr(plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(p.w_scale));
    set_attr(plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(p.x_scale));
  }
  const float alpha = 1.0f, beta = 0.0f;
  DSI_CUBLAS_CHECK(cublasLtMatmul(impl.handle, plan.desc, &alpha, p.w.data, plan.a, p.x.data, plan.b, &beta, p.y.data,
                                  plan.d, p.y.data, plan.d, &plan.algo, impl.workspace, impl.workspace_bytes, stream));
}

bool fp8_gemm_supported(int64_t out_features, int64_t in_features) {
  return out_features % 128 == 0 && in_features % 128 == 0 && out_features > 0 && in_features > 0;
}

Fp8ActScaleLayout fp8_act_scale_layout(int64_t n_tokens, int64_t in_features, const Fp8ScaleOrder& order) {
  const int64_t n_groups = ceil_div(in_features, int64_t(128));
  if (order.act_token_fastest) {
    const int64_t ld = round_up(n_tokens, int64_t(order.act_pad));
    return {1, ld, ld * n_groups};
  }
  const int64_t ld = round_up(n_groups, int64_t(order.act_pad));
  return {ld, 1, ld * n_tokens};
}

std::vector<float> fp8_weight_scales_for_gemm(const Weight& w, const Fp8ScaleOrder& order) {
  if (!w.quantized() || w.scale.dtype != DType::f32) fail("fp8 weight scales: the weight has no f32 block scales");
  if (w.block_rows != 128 || w.block_cols != 128)
    fail("fp8 weight scales: blocks are {}x{}, the FP8 GEMM takes 128x128", w.block_rows, w.block_cols);
  if (!order.weight_per_row && w.row_offset % 128 != 0)
    fail("fp8 weight scales: a row slice at {} does not start on a block", w.row_offset);
  const int64_t n_in = ceil_div(w.cols(), int64_t(128));
  const int64_t last_block = (w.row_offset + w.rows() - 1) / 128;
  if (w.rows() > 0 && (w.scale.rows <= last_block || w.scale.cols < n_in))
    fail("fp8 weight scales: scale is [{}, {}], the weight needs [{}, {}]", w.scale.rows, w.scale.cols, last_block + 1,
         n_in);
  // Rows of the scale grid: 128-row blocks, or every row (its block's scale).
  const int64_t n_rows = order.weight_per_row ? w.rows() : ceil_div(w.rows(), int64_t(128));
  auto scale_of = [&](int64_t r, int64_t kb) {
    const int64_t block = order.weight_per_row ? (w.row_offset + r) / 128 : w.row_offset / 128 + r;
    return w.scale.row<const float>(block)[kb];
  };
  const int64_t ld = round_up(order.weight_in_fastest ? n_in : n_rows, int64_t(order.weight_pad));
  std::vector<float> s(size_t(ld * (order.weight_in_fastest ? n_rows : n_in)), 0.0f);
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t kb = 0; kb < n_in; ++kb)
      s[size_t(order.weight_in_fastest ? r * ld + kb : kb * ld + r)] = scale_of(r, kb);
  return s;
}

}  // namespace dsi::cuda
