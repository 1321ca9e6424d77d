#pragma once
// Decode steps as CUDA graphs: a graph replays fixed shapes, so a decode step is padded to the
// next of a few batch sizes (vLLM's capture sizes: 1, 2, 4, then multiples of 8) and keyed by
// that size and its context bucket, which fixes every launch of the step (the attention's
// split count is picked from the context rounded up to a power of two: cuda_backend_ops.cpp).
// Padding rows repeat the last sequence (same token, position and block table) with
// kNoKvSlot, so they attend over valid cache rows, store nothing and produce logits no one
// reads; every real row's result is what it would be without them.
#include <cstdint>
#include <optional>

#include "backend/step_context.h"

namespace dsi {

// The graph batch size for n rows: the smallest capture size >= n, but at most max_rows (the
// workspace's limit; then n itself); 0 above the largest capture size (such steps run eagerly).
int64_t graph_batch_size(int64_t n, int64_t max_rows);

// For a decode step (every sequence one new token, a logit row for each, in order): its
// graph's key, with `padded` set to the batch padded to the graph's size when that differs
// from b's (else left empty). nullopt for any other step: prefill, chunked, or mixed steps,
// and steps larger than every capture size, run eagerly.
std::optional<uint64_t> decode_graph_key(const ForwardBatch& b, int64_t max_rows, ForwardBatch& padded);

}  // namespace dsi
