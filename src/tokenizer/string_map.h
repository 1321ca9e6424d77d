#pragma once
// A hash map from strings (token spellings) to ids that can be searched with a string_view,
// so lookups of slices of the input allocate nothing.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace dsi {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

using TokenIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

}  // namespace dsi
