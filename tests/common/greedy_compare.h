#pragma once
// Tie-aware comparison of greedy decodes (header-only; tests only).
//
// A backend whose logits differ from the reference by up to some bound e (float32 CPU: 1e-5;
// a bf16 backend: far more) may legitimately pick a different greedy token wherever the
// reference's two best logits are closer than about 2e. Exact token equality would then fail
// for a correct backend; comparing only logits would miss a wrong decode loop. This helper
// accepts a differing token only where the reference itself is that close to a tie:
//
//   at position i (the logits row from which reference token i was chosen), a candidate token
//   c != ref[i] is accepted iff  ref_logit[ref[i]] - ref_logit[c] < tie_bound.
//
// That implies the reference's top-2 margin is below tie_bound, and is stricter when c is not
// the reference's runner-up. The first accepted divergence ends the comparison: after it the
// two sequences have different prefixes, so their later tokens legitimately differ and the
// reference logits no longer describe the candidate's positions. A tie_bound of 0 is exact
// equality.
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>

namespace dsi::test {

struct GreedyComparison {
  bool ok = false;
  int64_t n_equal = 0;             // leading positions where the tokens are equal
  int64_t accepted_at = -1;        // position of the accepted near-tie divergence, or -1
  std::string message;             // why not ok (or where the accepted divergence was)
};

// ref_logits: [n_positions, vocab] row-major; row i is the distribution reference token i was
// chosen from (so n_positions >= ref_tokens.size()). The candidate must be as long as the
// reference unless it diverged at an accepted near-tie.
inline GreedyComparison compare_greedy_tie_aware(std::span<const float> ref_logits, int64_t vocab,
                                                 std::span<const int32_t> ref_tokens,
                                                 std::span<const int32_t> candidate_tokens, float tie_bound) {
  GreedyComparison r;
  const auto n_ref = int64_t(ref_tokens.size());
  if (vocab <= 0 || int64_t(ref_logits.size()) < n_ref * vocab) {
    r.message = "reference logits hold " + std::to_string(ref_logits.size()) + " values, fewer than " +
                std::to_string(n_ref) + " positions x vocab " + std::to_string(vocab);
    return r;
  }
  const auto n = std::min(n_ref, int64_t(candidate_tokens.size()));
  for (int64_t i = 0; i < n; ++i) {
    const auto row = ref_logits.subspan(size_t(i * vocab), size_t(vocab));
    const int32_t want = ref_tokens[size_t(i)];
    const int32_t got = candidate_tokens[size_t(i)];
    if (want < 0 || want >= vocab || got < 0 || got >= vocab) {
      r.message = "token outside the vocabulary at position " + std::to_string(i);
      return r;
    }
    // A reference token that is not its row's argmax means the logits and tokens do not belong
    // together, and any margin read from them would be meaningless.
    if (*std::max_element(row.begin(), row.end()) > row[size_t(want)]) {
      r.message = "reference token " + std::to_string(want) + " is not the argmax of its logits at position " +
                  std::to_string(i);
      return r;
    }
    if (got == want) {
      ++r.n_equal;
      continue;
    }
    const float gap = row[size_t(want)] - row[size_t(got)];
    if (gap < tie_bound) {
      r.ok = true;
      r.accepted_at = i;
      r.message = "accepted divergence at position " + std::to_string(i) + ": token " + std::to_string(got) +
                  " instead of " + std::to_string(want) + ", reference gap " + std::to_string(gap) + " < " +
                  std::to_string(tie_bound);
      return r;
    }
    r.message = "token " + std::to_string(got) + " instead of " + std::to_string(want) + " at position " +
                std::to_string(i) + ": reference gap " + std::to_string(gap) + " is not below the tie bound " +
                std::to_string(tie_bound);
    return r;
  }
  if (int64_t(candidate_tokens.size()) != n_ref) {
    r.message = "candidate has " + std::to_string(candidate_tokens.size()) + " tokens, the reference " +
                std::to_string(n_ref);
    return r;
  }
  r.ok = true;
  return r;
}

}  // namespace dsi::test
