// One block a token row (mla_rope_norm_cache.h): the latent's sum of squares, its normed
// values back into kv, the shared key's and every query head's pairs rotated with the row's
// cos and sin (computed once into shared memory), then kv's row copied to its cache slot.
#include "backend/cuda/mla_rope_norm_cache.h"

#include <string>

#include "backend/cuda/args.h"
#include "backend/cuda/check.h"
#include "backend/cuda/kernel_util.cuh"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

using namespace detail;

namespace {

constexpr int kThreads = 128;

template <class T, class TC>
__global__ void __launch_bounds__(kThreads) mla_rope_norm_cache_kernel(MlaRopeNormCacheParams p) {
  detail::pdl_begin();
  __shared__ float cos_s[kMlaMaxRopePairs], sin_s[kMlaMaxRopePairs];
  const int64_t kv_dim = p.kv.cols;
  for (int64_t r = blockIdx.x; r < p.kv.rows; r += gridDim.x) {
    T* kv = static_cast<T*>(p.kv.data) + r * p.kv.row_stride;
    T* q = static_cast<T*>(p.q.data) + r * p.q.row_stride;
    double ss = 0;
    for (int64_t c = threadIdx.x; c < p.latent; c += kThreads) {
      const double v = to_f32(kv[c]);
      ss += v * v;
    }
    ss = block_sum(ss);  // its barriers also order the previous row's reads of cos_s / sin_s
    const float inv = rms_inverse(ss, p.latent, p.eps);
    for (int64_t c = threadIdx.x; c < p.latent; c += kThreads) kv[c] = from_f32<T>(p.kv_norm[c] * (to_f32(kv[c]) * inv));
    for (int i = threadIdx.x; i < p.n_pairs; i += kThreads)
      rope_cos_sin(p.positions[r], p.inv_freq[i], p.attention_factor, cos_s[i], sin_s[i]);
    __syncthreads();
    for (int i = threadIdx.x; i < p.n_pairs; i += kThreads)
      rotate_pair(kv + p.kv_rope_offset + 2 * i, cos_s[i], sin_s[i]);
    for (int idx = threadIdx.x; idx < p.q_heads * p.n_pairs; idx += kThreads) {
      const int h = idx / p.n_pairs, i = idx - h * p.n_pairs;
      rotate_pair(q + int64_t(h) * p.q_head_stride + p.q_rope_offset + 2 * i, cos_s[i], sin_s[i]);
    }
    __syncthreads();  // kv's row is final: every thread copies its share of it
    const int64_t slot = p.slots[r];
    if (slot < 0 || slot >= p.pool.rows) continue;
    TC* dst = static_cast<TC*>(p.pool.data) + slot * p.pool.row_stride;
    for (int64_t c = threadIdx.x; c < kv_dim; c += kThreads) dst[c] = from_f32<TC>(to_f32(kv[c]));
  }
}

}  // namespace

void mla_rope_norm_cache(const MlaRopeNormCacheParams& p, cudaStream_t stream) {
  const char* op = "mla_rope_norm_cache";
  require_float(p.q, op, "q");
  require_float(p.kv, op, "kv");
  require_float(p.pool, op, "pool");
  require_shape(p.q, p.kv.rows, p.q.cols, op, "q");
  require_shape(p.kv, p.kv.rows, p.pool.cols, op, "kv");
  require_shape(p.pool, p.pool.rows, p.pool.cols, op, "pool");
  if (p.q.dtype != p.kv.dtype) fail_argument(std::string(op) + ": q and kv differ in dtype");
  if (p.n_pairs < 1 || p.n_pairs > kMlaMaxRopePairs || p.latent < 1 || p.kv_rope_offset < p.latent ||
      p.kv_rope_offset + 2 * p.n_pairs > p.kv.cols || p.q_heads < 1 ||
      int64_t(p.q_heads - 1) * p.q_head_stride + p.q_rope_offset + 2 * p.n_pairs > p.q.cols)
    fail_argument(std::string(op) + ": " + std::to_string(p.n_pairs) + " rotary pairs (at most " +
                  std::to_string(kMlaMaxRopePairs) + ") at column " + std::to_string(p.kv_rope_offset) +
                  " of kv rows of " + std::to_string(p.kv.cols) + " after a latent of " + std::to_string(p.latent) +
                  ", or at " + std::to_string(p.q_rope_offset) + " of " + std::to_string(p.q_heads) +
                  " query heads of stride " + std::to_string(p.q_head_stride) + " in rows of " +
                  std::to_string(p.q.cols));
  if (p.kv.rows == 0) return;
  if (!p.slots || !p.kv_norm || !p.positions || !p.inv_freq) fail_argument(std::string(op) + ": a pointer is missing");
  dispatch_float(p.kv.dtype, [&](auto t) {
    dispatch_float(p.pool.dtype, [&](auto tc) {
      const auto kernel = mla_rope_norm_cache_kernel<decltype(t), decltype(tc)>;
      detail::launch(kernel, row_grid(p.kv.rows), kThreads, 0, stream, p);
    });
  });
  DSI_CUDA_CHECK_LAUNCH(stream, op);
}

}  // namespace dsi::cuda
