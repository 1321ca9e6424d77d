"""Numerics helpers shared by the Python tests: log-softmax in float64, top-2 margins, and the
tie-aware greedy comparison (the same rule as tests/common/greedy_compare.h).

A backend whose logits differ from the reference by up to some bound e may legitimately pick
a different greedy token wherever the reference's best logits are closer than about 2e. So a
candidate token c != ref[i] is accepted at position i (the logits row reference token i was
chosen from) only if ref_logit[ref[i]] - ref_logit[c] < tie_bound, which implies the
reference's top-2 margin there is below tie_bound. The first accepted divergence ends the
comparison: after it the sequences have different prefixes, so their later tokens
legitimately differ and the reference rows no longer describe the candidate's positions.
tie_bound 0 is exact equality. Pure Python (no numpy), rows as sequences of floats.
"""
import math
from dataclasses import dataclass


def log_softmax(row):
    """log_softmax of one logits row, computed in float64 (math.fsum: exactly rounded sum)."""
    top = max(row)
    log_sum = math.log(math.fsum(math.exp(x - top) for x in row))
    return [x - top - log_sum for x in row]


def top2_margin(row):
    """Largest minus second-largest value of a row."""
    first = second = -math.inf
    for x in row:
        if x > first:
            first, second = x, first
        elif x > second:
            second = x
    return first - second


def rows(flat, vocab):
    """A flat [n, vocab] list as n rows."""
    assert len(flat) % vocab == 0, (len(flat), vocab)
    return [flat[i:i + vocab] for i in range(0, len(flat), vocab)]


@dataclass
class GreedyComparison:
    ok: bool
    n_equal: int
    accepted_at: int  # position of the accepted near-tie divergence, or -1
    message: str


def compare_greedy_tie_aware(ref_rows, ref_tokens, candidate_tokens, tie_bound):
    """ref_rows[i]: the logits reference token i was chosen from. See the module docstring."""
    if len(ref_rows) < len(ref_tokens):
        return GreedyComparison(False, 0, -1, f"{len(ref_rows)} reference rows for {len(ref_tokens)} tokens")
    n_equal = 0
    for i, (want, got) in enumerate(zip(ref_tokens, candidate_tokens)):
        row = ref_rows[i]
        if not (0 <= want < len(row) and 0 <= got < len(row)):
            return GreedyComparison(False, n_equal, -1, f"token outside the vocabulary at position {i}")
        # Logits and tokens that do not belong together would give meaningless margins.
        if max(row) > row[want]:
            return GreedyComparison(False, n_equal, -1,
                                    f"reference token {want} is not the argmax of its logits at position {i}")
        if got == want:
            n_equal += 1
            continue
        gap = row[want] - row[got]
        if gap < tie_bound:
            return GreedyComparison(True, n_equal, i, f"accepted divergence at position {i}: token {got} "
                                                      f"instead of {want}, reference gap {gap:.3e} < {tie_bound:.3e}")
        return GreedyComparison(False, n_equal, -1, f"token {got} instead of {want} at position {i}: reference gap "
                                                    f"{gap:.3e} is not below the tie bound {tie_bound:.3e}")
    if len(candidate_tokens) != len(ref_tokens):
        return GreedyComparison(False, n_equal, -1, f"candidate has {len(candidate_tokens)} tokens, "
                                                    f"the reference {len(ref_tokens)}")
    return GreedyComparison(True, n_equal, -1, "")
