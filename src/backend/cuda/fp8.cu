// FP8 quantisation and dequantisation kernels (fp8.h).
#include "backend/cuda/fp8.h"

#include "backend/cuda/kernel_util.cuh"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

using namespace detail;

namespace {

// One warp per (token, group): each lane holds 4 of the group's 128 values.
template <class T>
__global__ void quantize_fp8_kernel(const T* x, int64_t x_stride, uint8_t* q, int64_t q_stride, float* scales,
                                    int64_t s_token, int64_t s_group, int64_t n, int64_t n_groups) {
  detail::pdl_begin();
  const int lane = int(threadIdx.x) & 31;
  const int64_t warps_per_grid = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t item = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); item < n * n_groups;
       item += warps_per_grid) {
    const int64_t t = item / n_groups, g = item % n_groups;
    const T* src = x + t * x_stride + g * kFp8Group + lane * 4;
    float v[4];
    float amax = 0.0f;
    bool nan = false;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      v[k] = to_f32(src[k]);
      amax = fmaxf(amax, fabsf(v[k]));  // fmaxf drops NaN, so NaN is tracked on its own
      nan |= v[k] != v[k];
    }
    amax = warp_max(amax);
    nan = __any_sync(0xffffffffu, nan);
    const float s = nan ? __int_as_float(0x7fc00000) : (amax > 0.0f ? amax / kFp8E4m3Max : 1.0f);
    uint32_t packed = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k)
      packed |= uint32_t(__nv_cvt_float_to_fp8(v[k] / s, __NV_SATFINITE, __NV_E4M3)) << (8 * k);
    *reinterpret_cast<uint32_t*>(q + t * q_stride + g * kFp8Group + lane * 4) = packed;
    if (lane == 0) scales[t * s_token + g * s_group] = s;
  }
}

template <class TO>
__global__ void dequantize_fp8_kernel(const uint8_t* q, int64_t q_stride, const float* scale, int64_t scale_stride,
                                      int64_t row_offset, int block_rows, int block_cols, TO* out,
                                      int64_t out_stride, int64_t rows, int64_t cols) {
  detail::pdl_begin();
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* srow = scale + (r + row_offset) / block_rows * scale_stride;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      out[r * out_stride + c] = from_f32<TO>(fp8_e4m3_to_f32(q[r * q_stride + c]) * srow[c / block_cols]);
  }
}

}  // namespace

void quantize_fp8(const Fp8QuantizeParams& p, cudaStream_t stream) {
  const int64_t n = p.x.rows, k = p.x.cols;
  require_float(p.x, "quantize_fp8", "x");
  require_shape(p.x, n, k, "quantize_fp8", "x");
  require_dtype(p.q, p.q.dtype == DType::f8_e4m3, "quantize_fp8", "q", "f8_e4m3");
  require_shape(p.q, n, k, "quantize_fp8", "q");
  if (k % kFp8Group != 0) fail_argument("quantize_fp8: " + std::to_string(k) + " columns are not a multiple of 128");
  // Each lane reads 4 consecutive values and writes 4 codes as one 32-bit word.
  const bool aligned = reinterpret_cast<uintptr_t>(p.q.data) % 4 == 0 && (n <= 1 || p.q.row_stride % 4 == 0);
  if (!aligned) fail_argument("quantize_fp8: q rows must be 4-byte aligned");
  if (n == 0 || k == 0) return;
  if (!p.scales) fail_argument("quantize_fp8: no scales");
  const int64_t items = n * (k / kFp8Group);
  const unsigned threads = 256, per_block = threads / 32;
  const int64_t blocks = (items + per_block - 1) / per_block;
  const unsigned grid = unsigned(blocks < 65535 * 16 ? blocks : 65535 * 16);
  dispatch_float(p.x.dtype, [&](auto tx) {
    using T = decltype(tx);
    detail::launch(quantize_fp8_kernel<T>, grid, threads, 0, stream, static_cast<const T*>(p.x.data), p.x.row_stride,
                                                         static_cast<uint8_t*>(p.q.data), p.q.row_stride, p.scales,
                                                         p.scale_token_stride, p.scale_group_stride, n,
                                                         k / kFp8Group);
  });
  DSI_CUDA_CHECK_LAUNCH(stream, "quantize_fp8");
}

void dequantize_fp8(const Fp8DequantizeParams& p, cudaStream_t stream) {
  const Tensor& q = p.w.w;
  require_dtype(q, q.dtype == DType::f8_e4m3, "dequantize_fp8", "w", "f8_e4m3");
  require_shape(q, q.rows, q.cols, "dequantize_fp8", "w");
  require_float(p.out, "dequantize_fp8", "out");
  require_shape(p.out, q.rows, q.cols, "dequantize_fp8", "out");
  if (!p.w.quantized() || p.w.scale.dtype != DType::f32) fail_argument("dequantize_fp8: w needs f32 block scales");
  if (q.rows == 0 || q.cols == 0) return;
  dispatch_float(p.out.dtype, [&](auto to) {
    using TO = decltype(to);
    detail::launch(dequantize_fp8_kernel<TO>, row_grid(q.rows), 256, 0, stream,
        static_cast<const uint8_t*>(q.data), q.row_stride, static_cast<const float*>(p.w.scale.data),
        p.w.scale.row_stride, p.w.row_offset, p.w.block_rows, p.w.block_cols, static_cast<TO*>(p.out.data),
        p.out.row_stride, q.rows, q.cols);
  });
  DSI_CUDA_CHECK_LAUNCH(stream, "dequantize_fp8");
}

}  // namespace dsi::cuda
