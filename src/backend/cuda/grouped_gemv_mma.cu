// The skinny grouped GEMM (grouped_gemv.h) on tensor cores: the weights are the MMA's A operand
// (16 output columns a tile), the few activation rows its B operand (8 a tile), so a weight
// element is read from HBM once and used for up to 8 rows in one instruction, where the
// CUDA-core kernel (grouped_gemv.cu) spends an FMA and an L1 read of the activation per row.
//
// Layout. A CTA of kWarps warps serves one non-empty group; each 16-column tile of it is taken by
// kSlices of the warps, which split the depth K: the weight rows are cut into 64-byte chunks (32
// bf16 or 64 FP8 codes) and slice s takes chunks s, s + kSlices, ... . Where the shape has tiles
// enough to fill the GPU (the routed experts of a batch, lm_head) one warp takes a whole tile and
// its sums need no reduction; a small matrix (a linear layer of one group) is split 8 ways. Each
// warp keeps a ring of kInFlight chunks in flight along its whole run of the depth: a slot is
// reloaded as soon as its math is issued. Within a
// chunk, lane (g = lane / 4, t = lane % 4) loads bytes [16 t, 16 t + 16) of weight rows g and
// g + 8 and the matching 16 bytes of activation row g. mma.sync's k order inside a 16-deep step
// is any permutation that A and B agree on, so each lane's 8 contiguous elements feed its
// fragment slots directly (no shared-memory staging): step s of a bf16 chunk takes elements
// [4 s, 4 s + 4) of every lane's 8 (2 steps), of an FP8 chunk elements [4 s, 4 s + 4) of its 16
// (4 steps, codes widened to bf16 exactly). Split tiles meet in shared memory.
//
// Numerics: bf16 x bf16 products are exact in f32 and accumulate in f32, as in the CUDA-core
// kernel; an FP8 chunk (inside one scale block) is summed in f32 and then multiplied by its
// block scale. The order of the sums is fixed by the shape, so a row's result does not depend on
// the other rows of its group or of the batch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cmath>

#include "backend/cuda/grouped_gemv_common.cuh"
#include "backend/cuda/launch.h"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

namespace {

using detail::load_chunk;
using detail::mma_bf16;
using detail::nth_nonempty_group;

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr int kChunkBytes = 64;  // of one weight row
constexpr int kTileCols = 16;    // output columns (weight rows) per CTA

// Two e4m3 codes (the low 16 bits) -> a bf16 pair, exact (through half, which holds every e4m3
// value; bf16 has more exponent and mantissa bits than e4m3).
__device__ __forceinline__ uint32_t fp8x2_to_bf16x2(uint32_t codes) {
  const __half2_raw raw = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(codes & 0xffffu), __NV_E4M3);
  const float2 f = __half22float2(__half2(raw));
  const __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);
  return *reinterpret_cast<const uint32_t*>(&b);
}

__device__ __forceinline__ uint32_t word(const uint4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

// Registers of the load ring: kInFlight chunks ahead, each D x 2 weight words of 16 bytes, NT x (1
// or 2) activation words and (FP8) D x 2 block scales; about 64 registers in all, so the kernel
// fits 128 (two CTAs an SM) with its accumulators and pointers (ptxas: 104-128, no spills).
__host__ __device__ constexpr int in_flight(bool fp8, int d, int nt) {
  const int per_chunk = d * 8 + nt * (fp8 ? 2 : 1) * 4 + (fp8 ? 2 * d : 0);
  return 64 / per_chunk < 2 ? 2 : 64 / per_chunk;
}

// kDual: SwiGLU (w holds the gate rows, w_up the up rows of the same columns). NT: activation
// tiles of 8 rows per pass over the weights; a group with more rows takes more passes.
// kSlices: warps that share one 16-column tile, 1 or kWarps, each taking every kSlices-th chunk
// of the depth (their partial tiles meet in shared memory); the CTA covers kWarps / kSlices tiles.
template <bool kFp8, bool kDual, int NT, int kSlices>
__global__ void __launch_bounds__(kThreads, 2) grouped_gemv_mma_kernel(GroupedGemvParams q) {
  const GroupedGemmParams& p = q.gemm;
  constexpr int D = kDual ? 2 : 1;           // weight matrices
  constexpr int kInFlight = in_flight(kFp8, D, NT);
  constexpr int kElems = kFp8 ? 64 : 32;     // depth of a chunk
  constexpr int kSteps = kFp8 ? 4 : 2;       // MMA steps per chunk
  constexpr int kXWords = kFp8 ? 2 : 1;      // 16-byte activation words per lane, tile and chunk
  constexpr int kRows = NT * 8;              // activation rows per pass
  constexpr int kRedCols = D * kTileCols;
  constexpr int kTilesPerCta = kWarps / kSlices;
  static_assert(kSlices == 1 || kSlices == kWarps, "a tile is one warp's or the whole CTA's");
  __shared__ float red[kSlices > 1 ? kWarps : 1][kRows][kRedCols];

  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int gq = lane >> 2, tq = lane & 3;
  const int slice = warp % kSlices, tile = warp / kSlices;
  const int64_t col0 = (int64_t(blockIdx.x) * kTilesPerCta + tile) * kTileCols;
  const int n_chunks = int(p.depth / kElems);
  const int my_chunks = (n_chunks - slice + kSlices - 1) / kSlices;  // chunks slice, slice + kSlices, ...
  const int block_cols = p.w.block_cols;  // w_up's is checked equal

  // This lane's two weight rows (gq, gq + 8) of each matrix of group g, at its 16 bytes of chunk
  // 0; a column past the end is clamped: computed, never stored.
  const uint8_t* wp[D][2];
  const float* sp[D][2];
  auto weight_rows = [&](int g) {
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const GroupedWeight& w = d == 0 ? p.w : p.w_up;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t col = min(col0 + gq + 8 * h, p.n_cols - 1);
        wp[d][h] = static_cast<const uint8_t*>(w.data) + (int64_t(g) * w.group_stride + col * w.ld) * (kFp8 ? 1 : 2) +
                   16 * tq;
        sp[d][h] = kFp8 ? w.scale + int64_t(g) * w.scale_group_stride +
                              ((col + w.row_offset + int64_t(g) * w.group_row_step) / w.block_rows) * w.scale_ld
                        : nullptr;
      }
    }
  };
  int g = int(blockIdx.y);
  int64_t row_begin = 0, row_end = p.n_rows;
  if (p.row_offsets) {
    detail::pdl_begin();  // the group comes from the offsets, which the kernels before wrote
    g = nth_nonempty_group(p.row_offsets, p.n_groups, int(blockIdx.y), lane);
    if (g < 0) return;  // (uniform over the CTA)
    row_begin = p.row_offsets[g];
    row_end = p.row_offsets[g + 1];
    weight_rows(g);
  } else {
    // A linear layer's weights owe nothing to the kernels before it: the chunks of this warp's
    // first ring are fetched into L2 while those kernels finish (a whole small matrix, at batch 1).
    weight_rows(g);
#pragma unroll
    for (int i = 0; i < kInFlight; ++i) {
      if (i >= my_chunks) break;
      const int64_t at = (int64_t(slice) + int64_t(i) * kSlices) * kChunkBytes;
#pragma unroll
      for (int d = 0; d < D; ++d)
#pragma unroll
        for (int h = 0; h < 2; ++h) detail::prefetch_l2(wp[d][h] + at);
    }
    detail::pdl_begin();
  }
  const auto* a = static_cast<const uint8_t*>(p.a) + int64_t(g) * p.a_group_cols * 2;

  for (int64_t r0 = row_begin; r0 < row_end; r0 += kRows) {
    const int nt = int(min(int64_t(kRows), row_end - r0));
    // Activation row gq of each tile (lanes past the group's rows feed zeros).
    const uint8_t* xp[NT];
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      const int t = 8 * j + gq;
      xp[j] = t < nt ? a + (r0 + t) * p.a_ld * 2 + 16 * kXWords * tq : nullptr;
    }
    float acc[D][NT][4];
#pragma unroll
    for (int d = 0; d < D; ++d)
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[d][j][i] = 0.0f;

    // The load ring: slot u holds this warp's chunk i (i = u mod kInFlight): its weight words,
    // activation words and (FP8) block scales. A slot is refilled with chunk i + kInFlight as
    // soon as its math is issued, so kInFlight chunks stay in flight along the whole depth.
    uint4 wv[kInFlight][D][2];
    uint4 xv[kInFlight][NT][kXWords];
    float sv[kInFlight][D][2];
    auto load = [&](int u, int i) {
      const bool live = i < my_chunks;
      const int64_t c = int64_t(slice) + int64_t(i) * kSlices;
#pragma unroll
      for (int d = 0; d < D; ++d)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          wv[u][d][h] = live ? load_chunk(wp[d][h] + c * kChunkBytes) : make_uint4(0, 0, 0, 0);
          if constexpr (kFp8) sv[u][d][h] = live ? __ldg(sp[d][h] + c * kElems / block_cols) : 0.0f;
        }
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int x = 0; x < kXWords; ++x)
          xv[u][j][x] = live && xp[j] ? load_chunk(xp[j] + c * kElems * 2 + 16 * x) : make_uint4(0, 0, 0, 0);
    };
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) load(u, u);

    for (int i0 = 0; i0 < my_chunks; i0 += kInFlight) {
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        if (i0 + u < my_chunks) {
#pragma unroll
          for (int d = 0; d < D; ++d) {
            float part[NT][4];  // FP8: this chunk's sums before its block scale
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
              for (int e = 0; e < 4; ++e) part[j][e] = 0.0f;
#pragma unroll
            for (int s = 0; s < kSteps; ++s) {
              uint32_t a0, a1, a2, a3;  // rows gq / gq + 8, k slots {2t, 2t+1} / {2t+8, 2t+9}
              if constexpr (kFp8) {
                const uint32_t lo = word(wv[u][d][0], s), hi = word(wv[u][d][1], s);
                a0 = fp8x2_to_bf16x2(lo);
                a1 = fp8x2_to_bf16x2(hi);
                a2 = fp8x2_to_bf16x2(lo >> 16);
                a3 = fp8x2_to_bf16x2(hi >> 16);
              } else {
                a0 = word(wv[u][d][0], 2 * s);
                a1 = word(wv[u][d][1], 2 * s);
                a2 = word(wv[u][d][0], 2 * s + 1);
                a3 = word(wv[u][d][1], 2 * s + 1);
              }
#pragma unroll
              for (int j = 0; j < NT; ++j) {
                if (8 * j >= nt) continue;  // (uniform over the warp: an empty tile of this pass)
                const uint4& x = xv[u][j][kFp8 ? s / 2 : 0];
                const int w0 = kFp8 ? 2 * (s % 2) : 2 * s;
                mma_bf16(kFp8 ? part[j] : acc[d][j], a0, a1, a2, a3, word(x, w0), word(x, w0 + 1));
              }
            }
            if constexpr (kFp8) {
              const float s_lo = sv[u][d][0], s_hi = sv[u][d][1];
#pragma unroll
              for (int j = 0; j < NT; ++j) {
                acc[d][j][0] = fmaf(part[j][0], s_lo, acc[d][j][0]);
                acc[d][j][1] = fmaf(part[j][1], s_lo, acc[d][j][1]);
                acc[d][j][2] = fmaf(part[j][2], s_hi, acc[d][j][2]);
                acc[d][j][3] = fmaf(part[j][3], s_hi, acc[d][j][3]);
              }
            }
          }
        }
        load(u, i0 + u + kInFlight);
      }
    }

    // C fragment: acc[d][j][i] is (column gq + 8 (i / 2), row 8 j + 2 tq + i % 2) of the tile.
    auto store = [&](int t, int64_t col, float v, float up) {
      if (kDual) v = v / (1.0f + expf(-v)) * up;
      const int64_t at = (r0 + t) * p.y_ld + int64_t(g) * p.y_group_cols + col;
      if (q.y_dtype == DType::f32) static_cast<float*>(p.y)[at] = v;
      else static_cast<__nv_bfloat16*>(p.y)[at] = __float2bfloat16_rn(v);
    };
    if constexpr (kSlices == 1) {
      // The warp holds whole sums: straight from its fragments to y.
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int t = 8 * j + 2 * tq + (i & 1);
          const int64_t col = col0 + gq + 8 * (i >> 1);
          if (t < nt && col < p.n_cols) store(t, col, acc[0][j][i], acc[D - 1][j][i]);
        }
    } else {
#pragma unroll
      for (int d = 0; d < D; ++d)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int i = 0; i < 4; ++i)
            red[warp][8 * j + 2 * tq + (i & 1)][d * kTileCols + gq + 8 * (i >> 1)] = acc[d][j][i];
      __syncthreads();
      for (int e = int(threadIdx.x); e < kTilesPerCta * kRows * kTileCols; e += kThreads) {
        const int tl = e / (kRows * kTileCols), t = e / kTileCols % kRows, cc = e % kTileCols;
        const int64_t col = (int64_t(blockIdx.x) * kTilesPerCta + tl) * kTileCols + cc;
        if (t >= nt || col >= p.n_cols) continue;
        float v = 0.0f, up = 0.0f;
#pragma unroll
        for (int s = 0; s < kSlices; ++s) {
          v += red[tl * kSlices + s][t][cc];
          if (kDual) up += red[tl * kSlices + s][t][kTileCols + cc];
        }
        store(t, col, v, up);
      }
      __syncthreads();  // red is rewritten by the next pass
    }
  }
}

// Warps a launch should give work to: about two waves of the H200's 132 SMs x 16 resident warps.
constexpr int64_t kFillWarps = 4096;

// FP8 and SwiGLU take fewer tiles per pass: with more, the load ring, chunk sums and accumulators
// spill (ptxas, 128 registers); a group with more rows takes more passes (their weight rows again
// from L2). The routed experts average at most 16 rows (skinny_limits), linear layers 8.
template <bool kFp8, bool kDual, int kSlices>
void launch_tiles(const GroupedGemvParams& q, int nt, int64_t n_tiles, int active, cudaStream_t stream) {
  constexpr int kMaxTiles = kFp8 ? 1 : kDual ? 2 : 4;
  nt = nt < kMaxTiles ? nt : kMaxTiles;
  const dim3 grid{unsigned((n_tiles * kSlices + kWarps - 1) / kWarps), unsigned(active)};
  if (nt == 1) detail::launch(grouped_gemv_mma_kernel<kFp8, kDual, 1, kSlices>, grid, kThreads, 0, stream, q);
  if constexpr (kMaxTiles >= 2) {
    if (nt == 2) detail::launch(grouped_gemv_mma_kernel<kFp8, kDual, 2, kSlices>, grid, kThreads, 0, stream, q);
  }
  if constexpr (kMaxTiles >= 4) {
    if (nt == 4) detail::launch(grouped_gemv_mma_kernel<kFp8, kDual, 4, kSlices>, grid, kThreads, 0, stream, q);
  }
}

template <bool kFp8, bool kDual>
void launch_slices(const GroupedGemvParams& q, int nt, cudaStream_t stream) {
  const GroupedGemmParams& p = q.gemm;
  const int64_t n_tiles = (p.n_cols + kTileCols - 1) / kTileCols;
  // One warp a tile where that still gives every warp work, from the shape alone (n_groups,
  // not the groups this step fills), so a row's sums keep one order whatever else is batched.
  const int64_t tasks = n_tiles * p.n_groups;
  const int active = active_groups(q);
  if (tasks >= kFillWarps) launch_tiles<kFp8, kDual, 1>(q, nt, n_tiles, active, stream);
  else launch_tiles<kFp8, kDual, kWarps>(q, nt, n_tiles, active, stream);
}

}  // namespace

bool grouped_gemv_mma_takes(const GroupedGemvParams& q) {
  const GroupedGemmParams& p = q.gemm;
  if (p.w.k_major) return false;
  const bool fp8 = p.w.dtype == DType::f8_e4m3;
  // Whole chunks; an FP8 chunk inside one scale block.
  if (p.depth % (fp8 ? 64 : 32) != 0 || (fp8 && p.w.block_cols % 64 != 0)) return false;
  return int64_t((p.n_cols + kTileCols - 1) / kTileCols) < (int64_t(1) << 31);
}

cudaError_t launch_grouped_gemv_mma(const GroupedGemvParams& q, cudaStream_t stream) {
  const GroupedGemmParams& p = q.gemm;
  const int active = active_groups(q);
  // Activation tiles per pass: for the rows of a group, or with routed rows of one two standard
  // deviations above the mean (its count is about Poisson), since a group with more rows than
  // a pass holds reads its weights once a pass. V2-Lite's experts at batch 64 (6 rows an expert
  // on average, 14% of them above 8): 16-row passes take 292 against 338 us a layer with 8-row
  // ones (docs/design/cuda_notes.md, session 8).
  const double mean = double(p.n_rows) / double(active);
  const double rows = q.routed_rows ? mean + 2.0 * std::sqrt(mean) : std::ceil(mean);
  const int nt = rows <= 8 ? 1 : rows <= 16 ? 2 : 4;
  const bool fp8 = p.w.dtype == DType::f8_e4m3, dual = p.w_up.data != nullptr;
  if (fp8) dual ? launch_slices<true, true>(q, nt, stream) : launch_slices<true, false>(q, nt, stream);
  else dual ? launch_slices<false, true>(q, nt, stream) : launch_slices<false, false>(q, nt, stream);
  return cudaGetLastError();
}

}  // namespace dsi::cuda
