// Row-wise kernels (elementwise.h). One block per row with a grid-stride loop over rows;
// threads stride over the row's columns, VEC elements (16 or fewer bytes) at a time where every
// operand's rows are aligned for it, else one at a time.
#include "backend/cuda/elementwise.h"

#include <cmath>

#include "backend/cuda/kernel_util.cuh"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

using namespace detail;

namespace {

template <class T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

// Whether rows of t can be read VEC elements at a time.
bool vec_ok(const Tensor& t, int vec) {
  const size_t bytes = dtype_size(t.dtype) * size_t(vec);
  return t.cols % vec == 0 && (reinterpret_cast<uintptr_t>(t.data) % bytes) == 0 &&
         (t.rows <= 1 || (t.row_stride % vec) == 0);
}

template <class T>
__device__ __forceinline__ const T* row_ptr(const void* base, int64_t stride, int64_t r) {
  return static_cast<const T*>(base) + r * stride;
}
template <class T>
__device__ __forceinline__ T* row_ptr(void* base, int64_t stride, int64_t r) {
  return static_cast<T*>(base) + r * stride;
}

// ---- embedding

template <class TW, class TO>
__global__ void embedding_kernel(const TW* table, int64_t table_stride, int64_t vocab, const int32_t* ids,
                                 int64_t n_ids, int64_t hidden, TO* out, int64_t out_stride) {
  detail::pdl_begin();
  for (int64_t r = blockIdx.x; r < n_ids; r += gridDim.x) {
    const int32_t id = ids[r];
    TO* dst = out + r * out_stride;
    if (id < 0 || id >= vocab) {
      for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) dst[j] = from_f32<TO>(__int_as_float(0x7fc00000));
      continue;
    }
    const TW* src = table + int64_t(id) * table_stride;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) dst[j] = from_f32<TO>(to_f32(src[j]));
  }
}

template <class TO>
__global__ void embedding_fp8_kernel(const uint8_t* table, int64_t table_stride, int64_t vocab, const float* scale,
                                     int64_t scale_stride, int64_t row_offset, int block_rows, int block_cols,
                                     const int32_t* ids, int64_t n_ids, int64_t hidden, TO* out, int64_t out_stride) {
  detail::pdl_begin();
  for (int64_t r = blockIdx.x; r < n_ids; r += gridDim.x) {
    const int32_t id = ids[r];
    TO* dst = out + r * out_stride;
    if (id < 0 || id >= vocab) {
      for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) dst[j] = from_f32<TO>(__int_as_float(0x7fc00000));
      continue;
    }
    const uint8_t* src = table + int64_t(id) * table_stride;
    const float* srow = scale + (int64_t(id) + row_offset) / block_rows * scale_stride;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x)
      dst[j] = from_f32<TO>(fp8_e4m3_to_f32(src[j]) * srow[j / block_cols]);
  }
}

// ---- RMSNorm

template <class TX, class TO, int VEC>
__global__ void rms_norm_kernel(void* x, int64_t x_stride, const void* residual, int64_t res_stride,
                                const float* weight, float eps, TO* out, int64_t out_stride, int64_t n, int64_t d) {
  detail::pdl_begin();
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    TX* xr = row_ptr<TX>(x, x_stride, r);
    const TX* yr = residual ? row_ptr<TX>(residual, res_stride, r) : nullptr;
    double ss = 0;
    for (int64_t c = int64_t(threadIdx.x) * VEC; c < d; c += int64_t(blockDim.x) * VEC) {
      Vec<TX, VEC> a = *reinterpret_cast<const Vec<TX, VEC>*>(xr + c);
      if (yr) {
        const Vec<TX, VEC> b = *reinterpret_cast<const Vec<TX, VEC>*>(yr + c);
#pragma unroll
        for (int k = 0; k < VEC; ++k) a.v[k] = from_f32<TX>(to_f32(a.v[k]) + to_f32(b.v[k]));
        *reinterpret_cast<Vec<TX, VEC>*>(xr + c) = a;
      }
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        const double v = to_f32(a.v[k]);
        ss += v * v;
      }
    }
    ss = block_sum(ss);
    const float inv = rms_inverse(ss, d, eps);
    TO* orow = out + r * out_stride;
    // Each thread reads back the x elements it wrote itself, so no barrier is needed here, and
    // out may alias x (each element is read before the same thread overwrites it).
    for (int64_t c = int64_t(threadIdx.x) * VEC; c < d; c += int64_t(blockDim.x) * VEC) {
      const Vec<TX, VEC> a = *reinterpret_cast<const Vec<TX, VEC>*>(xr + c);
      const Vec<float, VEC> w = *reinterpret_cast<const Vec<float, VEC>*>(weight + c);
      Vec<TO, VEC> o;
#pragma unroll
      for (int k = 0; k < VEC; ++k) o.v[k] = from_f32<TO>(w.v[k] * (to_f32(a.v[k]) * inv));
      *reinterpret_cast<Vec<TO, VEC>*>(orow + c) = o;
    }
  }
}

// ---- rotary embedding

template <class T>
__global__ void rope_kernel(T* x, int64_t stride, int64_t n, int n_heads, int64_t head_stride, int64_t rope_offset,
                            const int32_t* positions, const float* inv_freq, int n_pairs, float attention_factor) {
  detail::pdl_begin();
  const int64_t total = n * n_pairs;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = idx / n_pairs;
    const int i = int(idx % n_pairs);
    float c, s;
    rope_cos_sin(positions[r], inv_freq[i], attention_factor, c, s);
    T* row = x + r * stride + rope_offset + 2 * i;
    for (int h = 0; h < n_heads; ++h) rotate_pair(row + int64_t(h) * head_stride, c, s);
  }
}

// ---- maps over rows: silu_mul, add, convert, kv_cache_write

struct SiluMulOp {
  __device__ float operator()(float g, float u) const { return g / (1.0f + expf(-g)) * u; }
};
struct AddOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

// out[r] = op(a[r], b[r]), VEC elements at a time.
template <class TA, class TB, class TO, int VEC, class Op>
__global__ void binary_rows_kernel(const TA* a, int64_t a_stride, const TB* b, int64_t b_stride, TO* out,
                                   int64_t out_stride, int64_t n, int64_t d, Op op) {
  detail::pdl_begin();
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const TA* ar = a + r * a_stride;
    const TB* br = b + r * b_stride;
    TO* orow = out + r * out_stride;
    for (int64_t c = int64_t(threadIdx.x) * VEC; c < d; c += int64_t(blockDim.x) * VEC) {
      const Vec<TA, VEC> va = *reinterpret_cast<const Vec<TA, VEC>*>(ar + c);
      const Vec<TB, VEC> vb = *reinterpret_cast<const Vec<TB, VEC>*>(br + c);
      Vec<TO, VEC> vo;
#pragma unroll
      for (int k = 0; k < VEC; ++k) vo.v[k] = from_f32<TO>(op(to_f32(va.v[k]), to_f32(vb.v[k])));
      *reinterpret_cast<Vec<TO, VEC>*>(orow + c) = vo;
    }
  }
}

// dst[dst_row(r)] = src[src_row(r)] for r < n; a null row map is the identity; a row outside
// [0, n_src) / [0, n_dst) is skipped (the host checked them; this only keeps a bad one in bounds).
template <class TS, class TD, int VEC>
__global__ void copy_rows_kernel(const TS* src, int64_t src_stride, const int32_t* src_rows, int64_t n_src, TD* dst,
                                 int64_t dst_stride, const int64_t* dst_rows, int64_t n_dst, int64_t n, int64_t d) {
  detail::pdl_begin();
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int64_t slot = dst_rows ? dst_rows[r] : r;
    const int64_t from = src_rows ? int64_t(src_rows[r]) : r;
    if (slot < 0 || slot >= n_dst || from < 0 || from >= n_src) continue;
    const TS* sr = src + from * src_stride;
    TD* dr = dst + slot * dst_stride;
    for (int64_t c = int64_t(threadIdx.x) * VEC; c < d; c += int64_t(blockDim.x) * VEC) {
      const Vec<TS, VEC> v = *reinterpret_cast<const Vec<TS, VEC>*>(sr + c);
      Vec<TD, VEC> o;
#pragma unroll
      for (int k = 0; k < VEC; ++k) o.v[k] = from_f32<TD>(to_f32(v.v[k]));
      *reinterpret_cast<Vec<TD, VEC>*>(dr + c) = o;
    }
  }
}

// Threads per block for rows of d elements read VEC at a time: enough to cover the row once
// where it is short, at most 256.
unsigned row_threads(int64_t d, int vec) {
  const int64_t per_row = (d + vec - 1) / vec;
  int64_t t = (per_row + 31) / 32 * 32;
  return unsigned(t < 32 ? 32 : (t > 256 ? 256 : t));
}

template <class Op>
void launch_binary(const char* name, const Tensor& a, const Tensor& b, const Tensor& out, Op op, cudaStream_t stream) {
  const bool vec = vec_ok(a, 4) && vec_ok(b, 4) && vec_ok(out, 4);
  const int64_t n = out.rows, d = out.cols;
  if (n == 0 || d == 0) return;
  dispatch_float(a.dtype, [&](auto ta) {
    dispatch_float(b.dtype, [&](auto tb) {
      dispatch_float(out.dtype, [&](auto to) {
        using TA = decltype(ta);
        using TB = decltype(tb);
        using TO = decltype(to);
        const auto* pa = static_cast<const TA*>(a.data);
        const auto* pb = static_cast<const TB*>(b.data);
        auto* po = static_cast<TO*>(out.data);
        if (vec)
          detail::launch(binary_rows_kernel<TA, TB, TO, 4, Op>, row_grid(n), row_threads(d, 4), 0, stream,
              pa, a.row_stride, pb, b.row_stride, po, out.row_stride, n, d, op);
        else
          detail::launch(binary_rows_kernel<TA, TB, TO, 1, Op>, row_grid(n), row_threads(d, 1), 0, stream,
              pa, a.row_stride, pb, b.row_stride, po, out.row_stride, n, d, op);
      });
    });
  });
  DSI_CUDA_CHECK_LAUNCH(stream, name);
}

// n rows: dst[dst_rows[r]] = src[src_rows[r]] (null: identity).
void launch_copy_rows(const char* name, const Tensor& src, const int32_t* src_rows, const Tensor& dst,
                      const int64_t* dst_rows, int64_t n, cudaStream_t stream) {
  const bool vec = vec_ok(src, 4) && vec_ok(dst, 4);
  const int64_t d = src.cols;
  if (n == 0 || d == 0) return;
  dispatch_float(src.dtype, [&](auto ts) {
    dispatch_float(dst.dtype, [&](auto td) {
      using TS = decltype(ts);
      using TD = decltype(td);
      const auto* ps = static_cast<const TS*>(src.data);
      auto* pd = static_cast<TD*>(dst.data);
      if (vec)
        detail::launch(copy_rows_kernel<TS, TD, 4>, row_grid(n), row_threads(d, 4), 0, stream,
            ps, src.row_stride, src_rows, src.rows, pd, dst.row_stride, dst_rows, dst.rows, n, d);
      else
        detail::launch(copy_rows_kernel<TS, TD, 1>, row_grid(n), row_threads(d, 1), 0, stream,
            ps, src.row_stride, src_rows, src.rows, pd, dst.row_stride, dst_rows, dst.rows, n, d);
    });
  });
  DSI_CUDA_CHECK_LAUNCH(stream, name);
}

}  // namespace

void embedding(const EmbeddingParams& p, cudaStream_t stream) {
  const Tensor& t = p.table.w;
  require_dtype(t, t.dtype == DType::f32 || t.dtype == DType::bf16 || t.dtype == DType::f8_e4m3, "embedding",
                "table", "f32, bf16 or f8_e4m3");
  require_shape(t, t.rows, t.cols, "embedding", "table");
  require_float(p.out, "embedding", "out");
  require_shape(p.out, p.n_ids, t.cols, "embedding", "out");
  if (t.dtype == DType::f8_e4m3 && (!p.table.quantized() || p.table.scale.dtype != DType::f32))
    fail_argument("embedding: an f8_e4m3 table needs f32 block scales");
  if (p.n_ids == 0) return;
  if (p.ids == nullptr) fail_argument("embedding: no ids");
  const unsigned threads = row_threads(t.cols, 1);
  dispatch_float(p.out.dtype, [&](auto to) {
    using TO = decltype(to);
    auto* out = static_cast<TO*>(p.out.data);
    if (t.dtype == DType::f8_e4m3) {
      const Weight& w = p.table;
      detail::launch(embedding_fp8_kernel<TO>, row_grid(p.n_ids), threads, 0, stream,
          static_cast<const uint8_t*>(t.data), t.row_stride, t.rows, static_cast<const float*>(w.scale.data),
          w.scale.row_stride, w.row_offset, w.block_rows, w.block_cols, p.ids, p.n_ids, t.cols, out,
          p.out.row_stride);
    } else {
      dispatch_float(t.dtype, [&](auto tw) {
        using TW = decltype(tw);
        detail::launch(embedding_kernel<TW, TO>, row_grid(p.n_ids), threads, 0, stream,
            static_cast<const TW*>(t.data), t.row_stride, t.rows, p.ids, p.n_ids, t.cols, out, p.out.row_stride);
      });
    }
  });
  DSI_CUDA_CHECK_LAUNCH(stream, "embedding");
}

void rms_norm(const RmsNormParams& p, cudaStream_t stream) {
  const int64_t n = p.x.rows, d = p.x.cols;
  require_float(p.x, "rms_norm", "x");
  require_shape(p.x, n, d, "rms_norm", "x");
  require_float(p.out, "rms_norm", "out");
  require_shape(p.out, n, d, "rms_norm", "out");
  require_dtype(p.weight, p.weight.dtype == DType::f32, "rms_norm", "weight", "f32");
  if (p.weight.numel() != d || !p.weight.contiguous())
    fail_argument("rms_norm: weight is " + shape_str(p.weight) + " for rows of " + std::to_string(d));
  const bool fused = p.residual.data != nullptr;
  if (fused) {
    require_shape(p.residual, n, d, "rms_norm", "residual");
    require_dtype(p.residual, p.residual.dtype == p.x.dtype, "rms_norm", "residual", "the dtype of x");
  }
  if (n == 0 || d == 0) return;
  // 16-byte accesses of x; the f32 weight and the output then move 8 or 16 bytes per access.
  const int vec = p.x.dtype == DType::bf16 ? 8 : 4;
  const bool use_vec = vec_ok(p.x, vec) && vec_ok(p.out, vec) && (!fused || vec_ok(p.residual, vec)) &&
                       vec_ok(p.weight, vec);
  dispatch_float(p.x.dtype, [&](auto tx) {
    dispatch_float(p.out.dtype, [&](auto to) {
      using TX = decltype(tx);
      using TO = decltype(to);
      auto* out = static_cast<TO*>(p.out.data);
      const auto* w = static_cast<const float*>(p.weight.data);
      const void* res = fused ? p.residual.data : nullptr;
      if (use_vec && vec == 8)
        detail::launch(rms_norm_kernel<TX, TO, 8>, row_grid(n), row_threads(d, 8), 0, stream,
            p.x.data, p.x.row_stride, res, p.residual.row_stride, w, p.eps, out, p.out.row_stride, n, d);
      else if (use_vec)
        detail::launch(rms_norm_kernel<TX, TO, 4>, row_grid(n), row_threads(d, 4), 0, stream,
            p.x.data, p.x.row_stride, res, p.residual.row_stride, w, p.eps, out, p.out.row_stride, n, d);
      else
        detail::launch(rms_norm_kernel<TX, TO, 1>, row_grid(n), row_threads(d, 1), 0, stream,
            p.x.data, p.x.row_stride, res, p.residual.row_stride, w, p.eps, out, p.out.row_stride, n, d);
    });
  });
  DSI_CUDA_CHECK_LAUNCH(stream, "rms_norm");
}

void rope(const RopeParams& p, cudaStream_t stream) {
  require_float(p.x, "rope", "x");
  require_shape(p.x, p.x.rows, p.x.cols, "rope", "x");
  if (p.n_heads < 1 || p.n_pairs < 0 || p.rope_offset < 0 ||
      int64_t(p.n_heads - 1) * p.head_stride + p.rope_offset + 2 * int64_t(p.n_pairs) > p.x.cols)
    fail_argument("rope: " + std::to_string(p.n_heads) + " heads of stride " + std::to_string(p.head_stride) +
                  " with rope dims [" + std::to_string(p.rope_offset) + ", " +
                  std::to_string(p.rope_offset + 2 * int64_t(p.n_pairs)) + ") exceed the row of " +
                  std::to_string(p.x.cols));
  const int64_t total = p.x.rows * p.n_pairs;
  if (total == 0) return;
  if (!p.positions || !p.inv_freq) fail_argument("rope: positions and inv_freq are required");
  const unsigned threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  const unsigned grid = unsigned(blocks < 65535 * 16 ? blocks : 65535 * 16);
  dispatch_float(p.x.dtype, [&](auto tx) {
    using T = decltype(tx);
    detail::launch(rope_kernel<T>, grid, threads, 0, stream, static_cast<T*>(p.x.data), p.x.row_stride, p.x.rows,
                   p.n_heads, p.head_stride, p.rope_offset, p.positions, p.inv_freq, p.n_pairs, p.attention_factor);
  });
  DSI_CUDA_CHECK_LAUNCH(stream, "rope");
}

void silu_mul(const SiluMulParams& p, cudaStream_t stream) {
  const int64_t n = p.gate.rows, d = p.gate.cols;
  require_float(p.gate, "silu_mul", "gate");
  require_float(p.up, "silu_mul", "up");
  require_float(p.out, "silu_mul", "out");
  require_shape(p.gate, n, d, "silu_mul", "gate");
  require_shape(p.up, n, d, "silu_mul", "up");
  require_shape(p.out, n, d, "silu_mul", "out");
  launch_binary("silu_mul", p.gate, p.up, p.out, SiluMulOp{}, stream);
}

void add(const AddParams& p, cudaStream_t stream) {
  const int64_t n = p.x.rows, d = p.x.cols;
  require_float(p.x, "add", "x");
  require_float(p.y, "add", "y");
  require_shape(p.x, n, d, "add", "x");
  require_shape(p.y, n, d, "add", "y");
  launch_binary("add", p.x, p.y, p.x, AddOp{}, stream);
}

void convert(const ConvertParams& p, cudaStream_t stream) {
  require_float(p.src, "convert", "src");
  require_float(p.dst, "convert", "dst");
  require_shape(p.src, p.src.rows, p.src.cols, "convert", "src");
  require_shape(p.dst, p.src.rows, p.src.cols, "convert", "dst");
  launch_copy_rows("convert", p.src, nullptr, p.dst, nullptr, p.src.rows, stream);
}

void kv_cache_write(const KvCacheWriteParams& p, cudaStream_t stream) {
  require_float(p.pool, "kv_cache_write", "pool");
  require_float(p.kv, "kv_cache_write", "kv");
  require_shape(p.pool, p.pool.rows, p.pool.cols, "kv_cache_write", "pool");
  require_shape(p.kv, p.kv.rows, p.pool.cols, "kv_cache_write", "kv");
  if (p.kv.rows > 0 && !p.slots) fail_argument("kv_cache_write: no slots");
  launch_copy_rows("kv_cache_write", p.kv, nullptr, p.pool, p.slots, p.kv.rows, stream);
}

void gather_rows(const GatherRowsParams& p, cudaStream_t stream) {
  require_float(p.x, "gather_rows", "x");
  require_float(p.out, "gather_rows", "out");
  require_shape(p.x, p.x.rows, p.out.cols, "gather_rows", "x");
  require_shape(p.out, p.out.rows, p.out.cols, "gather_rows", "out");
  if (p.out.rows > 0 && !p.rows) fail_argument("gather_rows: no row indices");
  launch_copy_rows("gather_rows", p.x, p.rows, p.out, nullptr, p.out.rows, stream);
}

}  // namespace dsi::cuda
