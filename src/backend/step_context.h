#pragma once
// One forward step's metadata: built and validated once on the host from the scheduler's
// ForwardBatch, uploaded once into backend buffers of fixed capacity and fixed addresses (so a
// CUDA graph captured for one step replays for the next), then read by every op of every layer.
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace dsi {

// One sequence's share of a forward batch. Its new tokens are rows [first_row, first_row +
// n_tokens) of the batch, at positions [n_cached, n_cached + n_tokens).
struct BatchSequence {
  int32_t first_row = 0;
  int32_t n_tokens = 0;
  int32_t n_cached = 0;              // tokens of this sequence already in the KV cache
  std::vector<int32_t> block_table;  // KV blocks holding positions [0, n_cached + n_tokens)
};

// A row whose key is not stored: a padding row that repeats a real row of the same step (a
// decode step padded to a CUDA graph's batch size, engine/step_padding.h). The real row writes
// the same key at the same place, so the padding row's attention reads it from there.
inline constexpr int64_t kNoKvSlot = -1;

// Everything a forward pass needs besides the weights: the flattened new tokens of every
// sequence in the step, and where their keys go. This is the step plan rank 0 broadcasts.
struct ForwardBatch {
  std::vector<int32_t> token_ids;  // [n_tokens]
  std::vector<int32_t> positions;  // [n_tokens]
  std::vector<int64_t> kv_slots;   // [n_tokens] cache row of each token: block * block_size + offset, or kNoKvSlot
  std::vector<BatchSequence> sequences;
  std::vector<int32_t> logit_rows;  // batch rows whose logits the caller wants, in output order
  int64_t n_tokens() const { return int64_t(token_ids.size()); }
};

// The capacity of the step buffers, fixed at startup.
struct StepLimits {
  int64_t max_tokens = 0;          // --max-num-batched-tokens
  int64_t max_seqs = 0;            // --max-num-seqs
  int64_t max_blocks_per_seq = 0;  // ceil(max context / block_size)
  int64_t max_logit_rows = 0;      // at most max_seqs in the engine; max_tokens for `logits`
};

// What a step's values must lie in; anything outside is a named error from begin().
struct StepBounds {
  int64_t vocab_size = 0;
  int64_t n_kv_blocks = 0;
  int block_size = 0;
};

// The step as flat host arrays, the exact bytes upload_step copies.
struct StepHost {
  std::vector<int32_t> token_ids;      // [n_tokens]
  std::vector<int32_t> positions;      // [n_tokens]
  std::vector<int64_t> kv_slots;       // [n_tokens]
  std::vector<int32_t> seq_first_row;  // [n_seqs]
  std::vector<int32_t> seq_n_tokens;   // [n_seqs]
  std::vector<int32_t> seq_n_cached;   // [n_seqs]
  std::vector<int32_t> block_table;    // [n_seqs, max_blocks_per_seq] row-major; unused entries -1
  std::vector<int32_t> logit_rows;     // [n_logit_rows]
  int64_t max_context = 0;             // longest n_cached + n_tokens of the step
  int64_t n_blocks_used = 0;           // widest block table of the step (<= max_blocks_per_seq)
};

// The step's metadata in backend memory. Views are sized to the current step; their data
// pointers and the block table's row stride (max_blocks_per_seq) never change.
struct StepContext {
  StepLimits limits;
  StepBounds bounds;
  StepHost host;  // the validated host copy, for shape checks and host-side planning

  Tensor token_ids;      // i32 [n_tokens, 1]
  Tensor positions;      // i32 [n_tokens, 1]
  Tensor kv_slots;       // i64 [n_tokens, 1]
  Tensor seq_first_row;  // i32 [n_seqs, 1]
  Tensor seq_n_tokens;   // i32 [n_seqs, 1]
  Tensor seq_n_cached;   // i32 [n_seqs, 1]
  Tensor block_table;    // i32 [n_seqs, n_blocks_used], row stride max_blocks_per_seq
  Tensor logit_rows;     // i32 [n_logit_rows, 1]

  int64_t n_tokens() const { return int64_t(host.token_ids.size()); }
  int64_t n_seqs() const { return int64_t(host.seq_first_row.size()); }
  int64_t n_logit_rows() const { return int64_t(host.logit_rows.size()); }

  // Allocates the step buffers of `limits` on the backend (once, at startup).
  StepContext(Backend& backend, const StepLimits& limits, const StepBounds& bounds);
  StepContext(const StepContext&) = delete;
  StepContext& operator=(const StepContext&) = delete;

  // Validates `batch` against the limits and bounds (every id, position, slot and block; rows
  // of sequences contiguous and covering the batch; block tables covering the context; logit
  // rows inside the batch), fills host, and uploads it: the one copy of the step's metadata.
  // Throws Error naming the field at fault; on error nothing of the previous step is kept.
  void begin(Backend& backend, const ForwardBatch& batch);

  // The backend allocation behind the views (i64 words: kv_slots first, then the i32 arrays at
  // fixed offsets) and its host staging twin (alloc_staging: pinned on a GPU).
  Buffer device;
  Buffer staging;
};

}  // namespace dsi
