// MLA attention on tensor cores for DeepSeek's latent dims (r = 512, dr = 64) with bf16 queries
// and cache, in the FlashMLA manner: the heads of one token are the MMA's 16 rows, so a cache
// row read once from HBM serves all of them in one instruction (the CUDA-core kernel,
// mla_attention.cu, spends an FMA per head per element and stages the cache as float32).
//
// Layout. A CTA of 4 warps takes one batch row, 16 heads and one split of the context (grid x:
// rows x head tiles, head tiles fastest; y: splits). The
// queries (16 x 576) and a double-buffered stage of 32 cache rows (32 x 576) sit in shared memory
// as bf16, filled by cp.async while the previous stage is computed. Scores: warp w takes cache
// rows [8 w, 8 w + 8) of the stage over the whole depth (36 k-steps). They meet in shared memory,
// where every warp reads the 16 x 32 scores for the online softmax (each warp computes the same
// statistics, in the same order). Output: warp w owns latent columns [128 w, 128 w + 128), 16
// accumulator tiles, and multiplies the stage's probabilities by its columns of the cache rows.
//
// Numerics: q.k products are exact in f32 and summed in f32 (in another order than the CUDA-core
// kernel). The probabilities are rounded to bf16 for the second product (as FlashMLA does) and
// the softmax denominator sums the rounded values, so each output is an exact weighted mean with
// weights perturbed by at most 2^-8 relative. Splits are the CUDA-core kernel's (whole 32-row
// tiles) and meet in its combine kernel, so a row's result depends on the shape only.
#include <cuda_bf16.h>

#include <cmath>

#include "backend/cuda/launch.h"
#include "backend/cuda/mla_split.cuh"
#include "backend/cuda/mma_util.cuh"
#include "backend/cuda/pdl.cuh"

namespace dsi::cuda {

namespace {

using detail::cp_async_16;
using detail::cp_async_commit;
using detail::cp_async_wait;
using detail::ldmatrix_x4;
using detail::ldmatrix_x4_trans;
using detail::mma_bf16;
using detail::pack_bf16;

constexpr int kR = 512, kD = 576;            // latent rank, latent + rope
constexpr int kWarps = 4, kThreads = 32 * kWarps;
constexpr int kHeads = 16;                   // MMA rows: the heads of one CTA
constexpr int kStageRows = kMlaSplitRows;    // cache rows a stage: the split unit
constexpr int kPitch = kD + 8;               // bf16 a shared row: rows 4 banks apart, so ldmatrix is conflict-free
constexpr int kChunks = kD / 8;              // 16-byte chunks a row
constexpr int kColsPerWarp = kR / kWarps;    // 128 output columns
constexpr int kOutTiles = kColsPerWarp / 8;  // 16 accumulator tiles of 8 columns
constexpr int kScorePitch = kStageRows + 4;  // floats a score row
constexpr float kLog2e = 1.4426950408889634f;
constexpr int kStages = 2;  // double buffering; 95 KB, so two CTAs share an SM (4 stages, one
                            // CTA an SM, measured no faster: docs/design/cuda_notes.md, session 7)
constexpr size_t kSmemBytes = size_t(kHeads + kStages * kStageRows) * kPitch * sizeof(__nv_bfloat16) +
                              size_t(kHeads) * kScorePitch * sizeof(float);
// A stage's copies: thread t takes row t / 4 and its 16-byte chunks t % 4, t % 4 + 4, ... (so
// one block-table lookup a thread a stage; a warp reads 64 contiguous bytes of 8 rows each).
constexpr int kThreadsPerRow = kThreads / kStageRows;
static_assert(kThreadsPerRow * kStageRows == kThreads && kChunks % kThreadsPerRow == 0,
              "a stage is whole rows of 16-byte copies");

__global__ void __launch_bounds__(kThreads) mla_attention_mma_kernel(MlaAttentionParams p) {
  detail::pdl_begin();
  extern __shared__ __align__(16) unsigned char smem[];
  auto* q_s = reinterpret_cast<__nv_bfloat16*>(smem);  // [kHeads][kPitch]
  __nv_bfloat16* kv_s = q_s + kHeads * kPitch;          // [kStages][kStageRows][kPitch]
  auto* s_s = reinterpret_cast<float*>(kv_s + kStages * kStageRows * kPitch);  // [kHeads][kScorePitch]
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  // The head tiles of one row are neighbours in x, so the CTAs that read the same cache rows
  // run together and share them through L2 (V3: 8 tiles of 16 heads a row).
  const int n_head_tiles = (p.n_heads + kHeads - 1) / kHeads;
  const int row = int(blockIdx.x) / n_head_tiles, h0 = (int(blockIdx.x) % n_head_tiles) * kHeads;
  const int split = int(blockIdx.y);

  // This split's context [kv_begin, kv_end): as the CUDA-core kernel's, whole 32-row tiles.
  const MlaRowSplit rs = mla_row_split(p, row, split);
  const int seq = rs.seq, kv_begin = rs.kv_begin, kv_end = rs.kv_end;
  const int n_stages = (kv_end - kv_begin + kStageRows - 1) / kStageRows;

  // The queries of heads [h0, h0 + 16); heads past n_heads are zeros.
  const auto* q_row = static_cast<const __nv_bfloat16*>(p.q_full) + int64_t(row) * p.q_ld;
  for (int c = tid; c < kHeads * kChunks; c += kThreads) {
    const int h = c / kChunks, k = c % kChunks;
    const bool ok = h0 + h < p.n_heads;
    cp_async_16(q_s + h * kPitch + 8 * k, ok ? q_row + int64_t(h0 + h) * kD + 8 * k : q_row, ok ? 16 : 0);
  }
  const auto* pool = static_cast<const __nv_bfloat16*>(p.kv_pool);
  const int32_t* blocks = seq >= 0 ? p.block_table + int64_t(seq) * p.block_table_ld : nullptr;
  // Cache rows [j0, j0 + 32) into stage `stage`; rows at or past kv_end are zeros (their
  // probabilities are 0, and a zero row keeps the product finite).
  auto load_stage = [&](int stage, int j0) {
    const int r = tid / kThreadsPerRow, pos = j0 + r;
    const bool ok = pos < kv_end;
    const int64_t slot = ok ? int64_t(blocks[pos / p.block_size]) * p.block_size + pos % p.block_size : 0;
    __nv_bfloat16* dst = kv_s + (stage * kStageRows + r) * kPitch;
    const __nv_bfloat16* src = pool + slot * p.kv_ld;
#pragma unroll
    for (int k = tid % kThreadsPerRow; k < kChunks; k += kThreadsPerRow)
      cp_async_16(dst + 8 * k, src + 8 * k, ok ? 16 : 0);
  };
  // kStages - 1 stages ahead; every round commits one group (maybe empty), so the wait below
  // always means "this round's stage has landed". The first group holds the queries too.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < n_stages) load_stage(s, kv_begin + s * kStageRows);
    cp_async_commit();
  }

  float o[kOutTiles][4];
#pragma unroll
  for (int n = 0; n < kOutTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // heads g and g + 8, base 2
  const float scale = p.softmax_scale * kLog2e;

  for (int st = 0; st < n_stages; ++st) {
    const int j0 = kv_begin + st * kStageRows;
    // Into the buffer the previous round read (the barrier ending that round freed it).
    if (const int ahead = st + kStages - 1; ahead < n_stages)
      load_stage(ahead % kStages, kv_begin + ahead * kStageRows);
    cp_async_commit();
    cp_async_wait<kStages - 1>();  // this stage (and the queries) have landed
    __syncthreads();
    const __nv_bfloat16* kv = kv_s + (st % kStages) * kStageRows * kPitch;

    // Scores of cache rows [8 warp, 8 warp + 8): two accumulators halve the dependent chain.
    float s0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, s1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    const __nv_bfloat16* a_row = q_s + ((lane & 7) + 8 * ((lane >> 3) & 1)) * kPitch + 8 * (lane >> 4);
    const __nv_bfloat16* b_row = kv + (8 * warp + (lane & 7)) * kPitch + 8 * (lane >> 3);
#pragma unroll 6
    for (int kk = 0; kk < kD / 16; kk += 2) {
      uint32_t a[4], a_next[4], b[4];
      ldmatrix_x4(a, a_row + 16 * kk);
      ldmatrix_x4(a_next, a_row + 16 * (kk + 1));
      ldmatrix_x4(b, b_row + 16 * kk);
      mma_bf16(s0, a[0], a[1], a[2], a[3], b[0], b[1]);
      mma_bf16(s1, a_next[0], a_next[1], a_next[2], a_next[3], b[2], b[3]);
    }
    {
      const int col = 8 * warp + 2 * t;
      const bool ok0 = j0 + col < kv_end, ok1 = j0 + col + 1 < kv_end;
      s_s[g * kScorePitch + col] = ok0 ? (s0[0] + s1[0]) * scale : -INFINITY;
      s_s[g * kScorePitch + col + 1] = ok1 ? (s0[1] + s1[1]) * scale : -INFINITY;
      s_s[(g + 8) * kScorePitch + col] = ok0 ? (s0[2] + s1[2]) * scale : -INFINITY;
      s_s[(g + 8) * kScorePitch + col + 1] = ok1 ? (s0[3] + s1[3]) * scale : -INFINITY;
    }
    __syncthreads();

    // Online softmax of heads g and g + 8 over the stage's 32 rows: this lane holds the 8 columns
    // its A fragments need (2 t, 2 t + 1, +8, +9 of each 16-row half); its quad holds all 32.
    uint32_t pa[2][4];  // the probabilities as the A fragments of the two 16-row k-steps
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const float* srow = s_s + (g + 8 * hh) * kScorePitch;
      float v[8];
#pragma unroll
      for (int ks = 0; ks < 2; ++ks) {
        v[4 * ks + 0] = srow[16 * ks + 2 * t];
        v[4 * ks + 1] = srow[16 * ks + 2 * t + 1];
        v[4 * ks + 2] = srow[16 * ks + 2 * t + 8];
        v[4 * ks + 3] = srow[16 * ks + 2 * t + 9];
      }
      float mx = v[0];
#pragma unroll
      for (int i = 1; i < 8; ++i) mx = fmaxf(mx, v[i]);
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[hh], mx);  // finite: a stage has at least one row in context
      const float alpha = exp2f(m[hh] - m_new);
      m[hh] = m_new;
      float sum = 0.0f;
      uint32_t packed[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        packed[i] = pack_bf16(exp2f(v[2 * i] - m_new), exp2f(v[2 * i + 1] - m_new));
        const float2 r = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&packed[i]));
        sum += r.x + r.y;  // the rounded values: numerator and denominator agree
      }
      l[hh] = l[hh] * alpha + sum;
#pragma unroll
      for (int n = 0; n < kOutTiles; ++n) {
        o[n][2 * hh] *= alpha;
        o[n][2 * hh + 1] *= alpha;
      }
      // A fragment slots: a0 (row g, k 2t), a1 (row g + 8, k 2t), a2 (row g, k 2t + 8), a3 (row g + 8, ...).
#pragma unroll
      for (int ks = 0; ks < 2; ++ks) {
        pa[ks][hh] = packed[2 * ks];
        pa[ks][2 + hh] = packed[2 * ks + 1];
      }
    }

    // o[:, my columns] += P (16 x 32) . stage rows [:, my columns].
    const __nv_bfloat16* v_row = kv + ((lane & 7) + 8 * ((lane >> 3) & 1)) * kPitch + warp * kColsPerWarp + 8 * (lane >> 4);
#pragma unroll
    for (int ks = 0; ks < 2; ++ks)
#pragma unroll
      for (int np = 0; np < kOutTiles / 2; ++np) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, v_row + 16 * ks * kPitch + 16 * np);
        mma_bf16(o[2 * np], pa[ks][0], pa[ks][1], pa[ks][2], pa[ks][3], b[0], b[1]);
        mma_bf16(o[2 * np + 1], pa[ks][0], pa[ks][1], pa[ks][2], pa[ks][3], b[2], b[3]);
      }
    __syncthreads();  // the stage and the scores are free for the next round
  }
  cp_async_wait<0>();

#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    l[hh] += __shfl_xor_sync(0xffffffffu, l[hh], 1);
    l[hh] += __shfl_xor_sync(0xffffffffu, l[hh], 2);
  }
  if (seq < 0 && p.n_splits == 1) return;  // a row of no sequence: nothing to write
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int h = h0 + g + 8 * hh;
    if (h >= p.n_heads) continue;
    const int col0 = warp * kColsPerWarp + 2 * t;
    if (p.n_splits == 1) {
      auto* out = static_cast<__nv_bfloat16*>(p.o_latent) + int64_t(row) * p.o_ld + int64_t(h) * kR + col0;
      const float inv = 1.0f / l[hh];
#pragma unroll
      for (int n = 0; n < kOutTiles; ++n)
        *reinterpret_cast<__nv_bfloat162*>(out + 8 * n) = __floats2bfloat162_rn(o[n][2 * hh] * inv, o[n][2 * hh + 1] * inv);
    } else {
      // Unnormalised partial sums and (m, l) in base 2, as the combine kernel reads them.
      float* part = p.split_scratch + ((int64_t(split) * p.n_tokens + row) * p.n_heads + h) * (kR + 2);
#pragma unroll
      for (int n = 0; n < kOutTiles; ++n)
        *reinterpret_cast<float2*>(part + col0 + 8 * n) = make_float2(o[n][2 * hh], o[n][2 * hh + 1]);
      if (warp == 0 && t == 0) {
        part[kR] = m[hh];
        part[kR + 1] = l[hh];
      }
    }
  }
}

}  // namespace

bool mla_attention_mma_takes(const MlaAttentionParams& p) {
  const auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  return p.tensor_cores && p.act_dtype == DType::bf16 && p.kv_dtype == DType::bf16 && p.kv_lora_rank == kR &&
         p.rope_dim == kD - kR && p.q_ld % 8 == 0 && p.kv_ld % 8 == 0 && p.o_ld % 2 == 0 && aligned(p.q_full) &&
         aligned(p.kv_pool) && reinterpret_cast<uintptr_t>(p.o_latent) % 4 == 0;
}

cudaError_t launch_mla_attention_mma(const MlaAttentionParams& p, cudaStream_t stream) {
  cudaError_t err = cudaFuncSetAttribute(mla_attention_mma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(kSmemBytes));
  if (err != cudaSuccess) return err;
  const dim3 grid(unsigned(p.n_tokens) * unsigned((p.n_heads + kHeads - 1) / kHeads), unsigned(p.n_splits));
  detail::launch(mla_attention_mma_kernel, grid, kThreads, kSmemBytes, stream, p);
  return cudaGetLastError();
}

}  // namespace dsi::cuda
