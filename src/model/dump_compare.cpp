#include "model/dump_compare.h"

#include <cmath>
#include <set>

#include "model/safetensors.h"

namespace dsi {

std::vector<TensorDiff> compare_dumps(const std::string& path_a, const std::string& path_b) {
  SafetensorsFile a(path_a), b(path_b);
  std::set<std::string> names;
  for (const auto& [name, e] : a.entries()) names.insert(name);
  for (const auto& [name, e] : b.entries()) names.insert(name);
  std::vector<TensorDiff> out;
  for (const auto& name : names) {
    TensorDiff d;
    d.name = name;
    const SafetensorsEntry* ea = a.find(name);
    const SafetensorsEntry* eb = b.find(name);
    if (!ea || !eb) {
      d.problem = std::string("only in ") + (ea ? path_a : path_b);
      out.push_back(d);
      continue;
    }
    d.shape = ea->shape;
    if (ea->shape != eb->shape) {
      d.problem = "shapes differ: " + shape_str(ea->shape) + " vs " + shape_str(eb->shape);
      out.push_back(d);
      continue;
    }
    double diff2 = 0, ref2 = 0, dot = 0, a2 = 0;
    for (int64_t i = 0; i < ea->numel(); ++i) {
      const double x = load_as_f32(ea->data, ea->dtype, i), y = load_as_f32(eb->data, eb->dtype, i);
      if (!std::isfinite(x)) ++d.n_nonfinite_a;
      if (!std::isfinite(y)) ++d.n_nonfinite_b;
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      d.max_abs = std::max(d.max_abs, std::fabs(x - y));
      d.max_ref = std::max(d.max_ref, std::fabs(y));
      diff2 += (x - y) * (x - y);
      ref2 += y * y;
      a2 += x * x;
      dot += x * y;
    }
    d.rel_l2 = ref2 > 0 ? std::sqrt(diff2 / ref2) : (diff2 > 0 ? INFINITY : 0);
    d.cosine = a2 > 0 && ref2 > 0 ? dot / std::sqrt(a2 * ref2) : (a2 == ref2 ? 1 : 0);
    out.push_back(d);
  }
  return out;
}

}  // namespace dsi
