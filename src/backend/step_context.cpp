#include "backend/step_context.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace dsi {

namespace {

// Where each array sits in the one allocation, in i32 words: kv_slots first (i64 alignment),
// the block table last, so a step copies the used prefix of the allocation only.
struct StepLayout {
  int64_t kv_slots, token_ids, positions, seq_first_row, seq_n_tokens, seq_n_cached, block_table, logit_rows, end;
  explicit StepLayout(const StepLimits& l) {
    kv_slots = 0;
    token_ids = 2 * l.max_tokens;
    positions = token_ids + l.max_tokens;
    seq_first_row = positions + l.max_tokens;
    seq_n_tokens = seq_first_row + l.max_seqs;
    seq_n_cached = seq_n_tokens + l.max_seqs;
    logit_rows = seq_n_cached + l.max_seqs;
    block_table = logit_rows + l.max_logit_rows;
    end = block_table + l.max_seqs * l.max_blocks_per_seq;
  }
};

void validate_limits(const StepLimits& l, const StepBounds& b) {
  if (l.max_tokens < 1 || l.max_seqs < 1 || l.max_blocks_per_seq < 1 || l.max_logit_rows < 0)
    fail("step limits must be positive: {} tokens, {} sequences, {} blocks per sequence, {} logit rows",
         l.max_tokens, l.max_seqs, l.max_blocks_per_seq, l.max_logit_rows);
  if (b.vocab_size < 1 || b.n_kv_blocks < 1 || b.block_size < 1)
    fail("step bounds must be positive: vocabulary {}, {} KV blocks of {} tokens", b.vocab_size, b.n_kv_blocks,
         b.block_size);
}

// Every check of a step's values, once, before anything is uploaded.
void validate(const ForwardBatch& batch, const StepLimits& l, const StepBounds& b) {
  const int64_t n = batch.n_tokens();
  if (n == 0) fail("step: empty batch");
  if (n > l.max_tokens) fail("step: {} tokens exceed the workspace's {} (--max-num-batched-tokens)", n, l.max_tokens);
  if (int64_t(batch.positions.size()) != n || int64_t(batch.kv_slots.size()) != n)
    fail("step: {} token ids but {} positions and {} kv_slots", n, batch.positions.size(), batch.kv_slots.size());
  if (int64_t(batch.sequences.size()) > l.max_seqs)
    fail("step: {} sequences exceed the workspace's {} (--max-num-seqs)", batch.sequences.size(), l.max_seqs);
  if (int64_t(batch.logit_rows.size()) > l.max_logit_rows)
    fail("step: {} logit rows exceed the workspace's {}", batch.logit_rows.size(), l.max_logit_rows);
  const int64_t n_slots = b.n_kv_blocks * b.block_size;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = batch.token_ids[size_t(i)];
    if (id < 0 || id >= b.vocab_size) fail("step: token id {} is outside the vocabulary [0, {})", id, b.vocab_size);
    if (batch.positions[size_t(i)] < 0) fail("step: row {} has negative position {}", i, batch.positions[size_t(i)]);
    const int64_t slot = batch.kv_slots[size_t(i)];
    if ((slot < 0 && slot != kNoKvSlot) || slot >= n_slots)
      fail("step: row {} has kv slot {} outside the cache of {} rows", i, slot, n_slots);
  }
  // Sequences tile the batch in order, and each token's position follows its sequence's cache.
  int64_t next_row = 0;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const BatchSequence& seq = batch.sequences[s];
    if (seq.first_row != next_row || seq.n_tokens < 1 || seq.first_row + int64_t(seq.n_tokens) > n)
      fail("step: sequence {} has rows [{}, {}), expected to start at row {} inside the batch of {}", s, seq.first_row,
           int64_t(seq.first_row) + seq.n_tokens, next_row, n);
    if (seq.n_cached < 0) fail("step: sequence {} has {} cached tokens", s, seq.n_cached);
    next_row += seq.n_tokens;
    const int64_t total = int64_t(seq.n_cached) + seq.n_tokens;
    const int64_t n_blocks = int64_t(seq.block_table.size());
    if (n_blocks * b.block_size < total)
      fail("step: sequence {}: {} blocks cannot hold {} tokens", s, n_blocks, total);
    if (n_blocks > l.max_blocks_per_seq)
      fail("step: sequence {}: {} blocks exceed the workspace's {} per sequence", s, n_blocks, l.max_blocks_per_seq);
    for (int32_t blk : seq.block_table)
      if (blk < 0 || blk >= b.n_kv_blocks) fail("step: sequence {}: block {} outside [0, {})", s, blk, b.n_kv_blocks);
    for (int32_t i = 0; i < seq.n_tokens; ++i)
      if (batch.positions[size_t(seq.first_row + i)] != seq.n_cached + i)
        fail("step: sequence {}: row {} has position {}, expected {}", s, seq.first_row + i,
             batch.positions[size_t(seq.first_row + i)], seq.n_cached + i);
  }
  if (next_row != n) fail("step: sequences cover {} of the {} rows", next_row, n);
  for (int32_t row : batch.logit_rows)
    if (row < 0 || row >= n) fail("step: logit row {} outside the batch of {}", row, n);
}

}  // namespace

StepContext::StepContext(Backend& backend, const StepLimits& l, const StepBounds& b) : limits(l), bounds(b) {
  validate_limits(l, b);
  const StepLayout layout(l);
  const int64_t n_words64 = (layout.end + 1) / 2;
  device = backend.alloc(DType::i64, n_words64, 1);
  staging = backend.alloc_staging(DType::i64, n_words64, 1);
}

void StepContext::begin(Backend& backend, const ForwardBatch& batch) {
  host = {};
  validate(batch, limits, bounds);
  StepHost& h = host;
  h.token_ids = batch.token_ids;
  h.positions = batch.positions;
  h.kv_slots = batch.kv_slots;
  h.logit_rows = batch.logit_rows;
  for (const auto& seq : batch.sequences) {
    h.seq_first_row.push_back(seq.first_row);
    h.seq_n_tokens.push_back(seq.n_tokens);
    h.seq_n_cached.push_back(seq.n_cached);
    h.max_context = std::max(h.max_context, int64_t(seq.n_cached) + seq.n_tokens);
    h.n_blocks_used = std::max(h.n_blocks_used, int64_t(seq.block_table.size()));
  }
  const int64_t n = n_tokens(), n_seq = n_seqs(), stride = limits.max_blocks_per_seq;
  h.block_table.assign(size_t(n_seq * stride), -1);
  for (int64_t s = 0; s < n_seq; ++s) {
    const auto& table = batch.sequences[size_t(s)].block_table;
    std::copy(table.begin(), table.end(), h.block_table.begin() + s * stride);
  }

  // Views into the fixed allocation, sized to this step; each array's used part is packed in
  // staging and copied once.
  const StepLayout layout(limits);
  auto* staged = static_cast<int32_t*>(staging.t.data);
  auto* dev = static_cast<int32_t*>(device.t.data);
  auto view = [&](int64_t offset, DType dtype, int64_t rows, int64_t cols, int64_t row_stride) {
    return Tensor{dev + offset, dtype, rows, cols, row_stride};
  };
  auto stage = [&](int64_t offset, const void* src, size_t bytes) {
    if (bytes) std::memcpy(staged + offset, src, bytes);
  };
  stage(layout.kv_slots, h.kv_slots.data(), h.kv_slots.size() * 8);
  stage(layout.token_ids, h.token_ids.data(), h.token_ids.size() * 4);
  stage(layout.positions, h.positions.data(), h.positions.size() * 4);
  stage(layout.seq_first_row, h.seq_first_row.data(), h.seq_first_row.size() * 4);
  stage(layout.seq_n_tokens, h.seq_n_tokens.data(), h.seq_n_tokens.size() * 4);
  stage(layout.seq_n_cached, h.seq_n_cached.data(), h.seq_n_cached.size() * 4);
  stage(layout.block_table, h.block_table.data(), h.block_table.size() * 4);
  stage(layout.logit_rows, h.logit_rows.data(), h.logit_rows.size() * 4);

  kv_slots = view(layout.kv_slots, DType::i64, n, 1, 1);
  token_ids = view(layout.token_ids, DType::i32, n, 1, 1);
  positions = view(layout.positions, DType::i32, n, 1, 1);
  seq_first_row = view(layout.seq_first_row, DType::i32, n_seq, 1, 1);
  seq_n_tokens = view(layout.seq_n_tokens, DType::i32, n_seq, 1, 1);
  seq_n_cached = view(layout.seq_n_cached, DType::i32, n_seq, 1, 1);
  block_table = view(layout.block_table, DType::i32, n_seq, h.n_blocks_used, stride);
  logit_rows = view(layout.logit_rows, DType::i32, int64_t(h.logit_rows.size()), 1, 1);

  // One copy: from the start of the allocation to the end of this step's block table rows.
  const int64_t n64 = (layout.block_table + n_seq * stride + 1) / 2;
  backend.copy_from_host(staging.t.data, device.t.slice_rows(0, n64));
}

}  // namespace dsi
