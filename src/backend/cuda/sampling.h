#pragma once
// Token choice on the GPU for a whole step: engine/sampler.h's steps 1-6 for every row of
// logits in one launch, with backend/sampling.h's shared arithmetic, so that the kept set and
// the token equal the CPU sampler's for the same logits and seed. The host prepares the rows
// (engine/sampling_rows.h: parameters, the penalty lists, the step's uniform drawn from each
// sequence's SamplerState), uploads them, calls sample(), and reads back the results (the only
// transfer back: n_rows SamplingResults). No allocation, no host synchronisation: capturable
// in a CUDA graph.
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/sampling.h"

namespace dsi::cuda {

struct SampleParams {
  float* logits;        // [n_rows, vocab] f32, rows row_stride apart; penalties and min_tokens
                        // masks are applied in place (as sample_token uses its logits as scratch)
  int64_t n_rows;
  int64_t vocab;        // 1 .. sampling::kMaxVocab
  int64_t row_stride;   // >= vocab
  const sampling::SamplingRow* rows;     // [n_rows], device memory
  sampling::SamplingPenalty* penalties;  // [n_penalties] device memory: rows' [penalty_begin, penalty_end)
                                         // (each sorted by token, tokens in [0, vocab)); `raw` is written
  int64_t n_penalties;
  sampling::SamplingResult* results;     // [n_rows], device memory
};

// One block (512 threads) per row: the contract check (a NaN / +inf / all -inf row gets a status, never a
// token), raw log-softmax and top-N logprobs, penalties, greedy or temperature, the kept set by
// radix selection over the order keys (top-k by count, top-p by integer mass, min-p as a
// filter) and the draw, in token order, against the row's uniform. Checks the arguments
// (dsi::Error naming the field) and the launch.
void sample(const SampleParams& p, cudaStream_t stream);

}  // namespace dsi::cuda
