#include "engine/step_padding.h"

#include <algorithm>
#include <bit>

namespace dsi {

namespace {
constexpr int64_t kLargestGraphBatch = 512;
}

int64_t graph_batch_size(int64_t n, int64_t max_rows) {
  if (n < 1 || n > kLargestGraphBatch) return 0;
  const int64_t size = n <= 4 ? int64_t(std::bit_ceil(uint64_t(n))) : (n + 7) / 8 * 8;
  return std::max(n, std::min(size, max_rows));
}

std::optional<uint64_t> decode_graph_key(const ForwardBatch& b, int64_t max_rows, ForwardBatch& padded) {
  padded = {};
  const int64_t n = b.n_tokens();
  if (n == 0 || int64_t(b.sequences.size()) != n || int64_t(b.logit_rows.size()) != n) return std::nullopt;
  int64_t context = 1;
  for (int64_t i = 0; i < n; ++i) {
    const BatchSequence& s = b.sequences[size_t(i)];
    if (s.n_tokens != 1 || s.first_row != i || b.logit_rows[size_t(i)] != i) return std::nullopt;
    context = std::max<int64_t>(context, int64_t(s.n_cached) + 1);
  }
  const int64_t size = graph_batch_size(n, max_rows);
  if (size == 0) return std::nullopt;
  const uint64_t bucket = uint64_t(std::countr_zero(std::bit_ceil(uint64_t(context))));
  const uint64_t key = (bucket << 32) | uint64_t(size);
  if (size == n) return key;
  padded = b;
  const BatchSequence& last = b.sequences.back();
  for (int64_t i = n; i < size; ++i) {
    padded.token_ids.push_back(b.token_ids.back());
    padded.positions.push_back(b.positions.back());
    padded.kv_slots.push_back(kNoKvSlot);
    padded.sequences.push_back({int32_t(i), 1, last.n_cached, last.block_table});
    padded.logit_rows.push_back(int32_t(i));
  }
  return key;
}

}  // namespace dsi
