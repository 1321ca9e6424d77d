#pragma once
// A per-request rule on which tokens may come next, given the tokens generated so far: the
// engine's hook for structured outputs (src/grammar/). The sampler turns it into masks
// (sampler.h, step 2) on every backend. Implementations are immutable to their users and
// thread-safe: sequences of a batch ask in parallel.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace dsi {

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  struct Next {
    std::shared_ptr<const std::vector<int32_t>> tokens;  // allowed next, sorted (may be empty)
    bool can_end = false;                                // the output is complete here: EOS allowed
  };
  virtual Next next(std::span<const int32_t> output) const = 0;
};

}  // namespace dsi
