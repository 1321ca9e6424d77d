// The step's sampler's host wrapper (sampling.h): argument checks and the launch of the kernel
// in sampling_kernel.cuh.
#include "backend/cuda/sampling.h"

#include <cstdint>
#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/sampling_kernel.cuh"

namespace dsi::cuda {

using namespace dsi::sampling;
using sampling_kernel::kThreads;
using sampling_kernel::sample_kernel;

void sample(const SampleParams& p, cudaStream_t stream) {
  if (p.n_rows < 0) fail_argument("sample: n_rows is " + std::to_string(p.n_rows));
  if (p.vocab < 1 || p.vocab > kMaxVocab)
    fail_argument("sample: vocab is " + std::to_string(p.vocab) + ", expected 1 .. " + std::to_string(kMaxVocab));
  if (p.row_stride < p.vocab)
    fail_argument("sample: logits row stride " + std::to_string(p.row_stride) + " < vocab " + std::to_string(p.vocab));
  if (p.n_penalties < 0 || p.n_penalties > INT32_MAX)
    fail_argument("sample: n_penalties is " + std::to_string(p.n_penalties));
  if (p.n_rows == 0) return;
  if (!p.logits) fail_argument("sample: no logits");
  if (!p.rows) fail_argument("sample: no rows");
  if (!p.results) fail_argument("sample: no results");
  if (p.n_penalties > 0 && !p.penalties) fail_argument("sample: no penalties for n_penalties " + std::to_string(p.n_penalties));
  const unsigned grid = unsigned(p.n_rows < 65535 ? p.n_rows : 65535);
  sample_kernel<<<grid, kThreads, 0, stream>>>(p.logits, p.n_rows, p.vocab, p.row_stride, p.rows, p.penalties,
                                               p.n_penalties, p.results);
  DSI_CUDA_CHECK_LAUNCH(stream, "sample_kernel");
}

}  // namespace dsi::cuda
