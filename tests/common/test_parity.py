"""The Python parity helpers (parity.py): the tie-aware greedy comparison accepts a differing
token only at a near-tie of the reference and stops there; log_softmax and top2_margin are
right on rows whose answers are known in closed form."""
import math
import unittest

from parity import compare_greedy_tie_aware, log_softmax, rows, top2_margin

# Three positions over a vocabulary of 4, reference tokens 2, 0, 3 (as greedy_compare_test.cpp):
# a clear winner, a near tie of tokens 0 and 1 (margin 1e-6) with token 3 0.1 behind, a clear winner.
LOGITS = rows([0.0, 0.5, 1.5, -1.0,
               2.0, 2.0 - 1e-6, 0.0, 1.9,
               0.1, 0.2, 0.3, 3.0], 4)
REF = [2, 0, 3]
BOUND = 1e-4


def compare(candidate, bound=BOUND):
    return compare_greedy_tie_aware(LOGITS, REF, candidate, bound)


class GreedyCompare(unittest.TestCase):
    def test_equal_passes(self):
        r = compare(REF)
        self.assertTrue(r.ok, r.message)
        self.assertEqual((r.n_equal, r.accepted_at), (3, -1))

    def test_divergence_at_large_margin_fails(self):
        r = compare([1, 0, 3])
        self.assertFalse(r.ok)
        self.assertIn("position 0", r.message)
        self.assertFalse(compare([2, 0, 2]).ok)

    def test_near_tie_accepted_and_ends_comparison(self):
        r = compare([2, 1, 0])
        self.assertTrue(r.ok, r.message)
        self.assertEqual((r.n_equal, r.accepted_at), (1, 1))
        self.assertTrue(compare([2, 1]).ok)

    def test_only_tokens_near_the_top_are_accepted(self):
        r = compare([2, 3, 3])
        self.assertFalse(r.ok)
        self.assertIn("not below the tie bound", r.message)

    def test_bound_zero_is_exact(self):
        self.assertFalse(compare([2, 1, 3], 0.0).ok)
        self.assertTrue(compare(REF, 0.0).ok)

    def test_length_mismatch_without_divergence_fails(self):
        self.assertFalse(compare([2, 0]).ok)
        self.assertFalse(compare([2, 0, 3, 1]).ok)

    def test_broken_reference_fails(self):
        self.assertFalse(compare_greedy_tie_aware(LOGITS, [1, 0, 3], [1, 0, 3], BOUND).ok)
        self.assertFalse(compare_greedy_tie_aware(LOGITS[:2], REF, REF, BOUND).ok)
        self.assertFalse(compare([2, 7, 3]).ok)


class Numerics(unittest.TestCase):
    def test_log_softmax(self):
        # Uniform: every entry is -log(n), whatever the offset (no overflow at 1000).
        for offset in (0.0, 1000.0, -1000.0):
            for x in log_softmax([offset] * 8):
                self.assertAlmostEqual(x, -math.log(8), places=14)
        # Two entries: log(sigmoid(+-d)).
        a, b = log_softmax([3.0, 1.0])
        self.assertAlmostEqual(a, -math.log1p(math.exp(-2.0)), places=14)
        self.assertAlmostEqual(b, -math.log1p(math.exp(2.0)), places=14)

    def test_top2_margin(self):
        self.assertEqual(top2_margin([1.0, 5.0, 3.0, 4.5]), 0.5)
        self.assertEqual(top2_margin([2.0, 2.0, 1.0]), 0.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
