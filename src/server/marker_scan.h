#pragma once
// Scanning streamed text for a marker that may arrive split over several deltas.
#include <algorithm>
#include <cstddef>
#include <string_view>

namespace dsi::server {

// Length of the longest suffix of `text` that is a proper prefix of `marker`: the bytes a
// streaming parser must hold back because the next delta may complete the marker.
inline size_t marker_prefix_at_end(std::string_view text, std::string_view marker) {
  for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n)
    if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
  return 0;
}

}  // namespace dsi::server
