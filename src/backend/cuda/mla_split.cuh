#pragma once
// What both MLA attention kernels (mla_attention.cu, mla_attention_mma.cu) agree on, so that
// their splits meet in the one combine kernel: which sequence owns a batch row, and which
// range of its context a split covers (whole tiles of kMlaSplitRows cache rows).
#include "backend/cuda/mla_attention.h"

namespace dsi::cuda {

inline constexpr int kMlaSplitRows = 32;

struct MlaRowSplit {
  int seq = -1;                   // the owning sequence, -1: a row of no sequence
  int kv_begin = 0, kv_end = 0;   // this split's cache rows (empty for no sequence)
};

// Called by a whole CTA (it synchronises): warp 0 finds the row's sequence (sequences may come
// in any order) and every thread gets it.
__device__ inline MlaRowSplit mla_row_split(const MlaAttentionParams& p, int row, int split) {
  __shared__ int seq_shared;
  const int lane = int(threadIdx.x) & 31;
  if (threadIdx.x < 32) {
    int found = -1;
    for (int base = 0; base < p.n_seqs && found < 0; base += 32) {
      const int s = base + lane;
      bool hit = false;
      if (s < p.n_seqs) {
        const int first = p.seq_first_row[s];
        hit = row >= first && row < first + p.seq_n_tokens[s];
      }
      const unsigned mask = __ballot_sync(0xffffffffu, hit);
      if (mask) found = base + __ffs(int(mask)) - 1;
    }
    if (lane == 0) seq_shared = found;
  }
  __syncthreads();
  MlaRowSplit r;
  r.seq = seq_shared;
  if (r.seq >= 0) {
    // A split of a short decode context is one tile, so splits spread even a 128-token context.
    const int ctx = p.seq_n_cached[r.seq] + (row - p.seq_first_row[r.seq]) + 1;
    const int n_tiles = (ctx + kMlaSplitRows - 1) / kMlaSplitRows;
    const int tiles_per_split = (n_tiles + p.n_splits - 1) / p.n_splits;
    r.kv_begin = min(ctx, split * tiles_per_split * kMlaSplitRows);
    r.kv_end = min(ctx, (split + 1) * tiles_per_split * kMlaSplitRows);
  }
  return r;
}

}  // namespace dsi::cuda
