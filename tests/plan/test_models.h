#pragma once
// Built-in published configs for the planner tests.
#include <map>
#include <string>

#include "plan/model_source.h"

namespace dsi::plan::testing {

inline const ModelConfig& builtin_config(const std::string& name) {
  // Parsed once per name; tests only read them.
  static std::map<std::string, ModelConfig> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, load_model_source(name).config).first;
  return it->second;
}

}  // namespace dsi::plan::testing
