#pragma once
// The Hugging Face references of a fixture (tests/data/README.md): per prompt its token ids,
// the float32 logits at every position and the 24 greedy tokens (header-only; tests only).
#include <cstring>
#include <string>
#include <vector>

#include "../common/test_paths.h"
#include "model/safetensors.h"

namespace dsi::test {

struct Reference {
  std::vector<int32_t> input_ids;
  std::vector<float> logits;  // [len, vocab]
  std::vector<int32_t> greedy_ids;
};

inline std::vector<Reference> read_reference(const std::string& model) {
  SafetensorsFile f(data_path(model + "/reference.safetensors"));
  std::vector<Reference> out;
  for (int k = 0;; ++k) {
    const std::string p = "prompt" + std::to_string(k) + ".";
    if (!f.find(p + "input_ids")) break;
    Reference r;
    auto read = [&](const std::string& name, auto& dst) {
      const auto* e = f.find(p + name);
      dst.resize(size_t(e->numel()));
      std::memcpy(dst.data(), e->data, e->end - e->begin);
    };
    read("input_ids", r.input_ids);
    read("logits", r.logits);
    read("greedy_ids", r.greedy_ids);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace dsi::test
