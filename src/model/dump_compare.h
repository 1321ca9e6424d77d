#pragma once
// Compares two tensor dumps (model/tensor_dump.h) tensor by tensor, for checking one backend
// against another layer by layer: `dsinfer compare-dumps A B`.
#include <string>
#include <vector>

namespace dsi {

struct TensorDiff {
  std::string name;
  std::string problem;  // non-empty: missing on one side, or shapes differ (no numbers then)
  std::vector<int64_t> shape;
  double max_abs = 0;     // max |a - b|
  double max_ref = 0;     // max |b|
  double rel_l2 = 0;      // ||a - b|| / ||b|| (0 when both are zero)
  double cosine = 1;      // a . b / (||a|| ||b||)
  int64_t n_nonfinite_a = 0, n_nonfinite_b = 0;
};

// Every tensor name of either file, sorted; values widened to double from their dtype.
std::vector<TensorDiff> compare_dumps(const std::string& path_a, const std::string& path_b);

}  // namespace dsi
