#pragma once
// The communication model of docs/design/parallel.md ("Communication per generated token"):
// bytes on all links together per generated token, for the two ways of running a MoE model
// on W ranks. `dsinfer plan` prints it for multi-GPU layouts; the design doc's table is its
// output for the published V2-Lite, V2 and V3 shapes (tests/plan/comm_model_test.cpp).
//
// Notation: H hidden size, L layers of which M are MoE, k experts per token, b bytes per
// activation value (bf16: 2). A ring all-reduce of n values over W ranks moves 2(W-1) n b bytes
// in total.
//   TP all-reduce (attention and MLP split by TP, or EP with replicated attention): two
//     all-reduces of H values per layer:             L x 2 x 2(W-1) H b
//   DP attention + EP all-to-all: the token goes to its k experts, (W-1)/W of them remote,
//     and comes back:                                M x 2 k (W-1)/W H b
//   the same with FP8 dispatch (1 byte per value out, b back): M x k (W-1)/W H (1 + b)
#include <cstdint>

#include "model/config.h"

namespace dsi::plan {

struct CommPerToken {
  int ranks = 1;
  double tp_all_reduce = 0;         // bytes
  double dp_ep_all_to_all = 0;      // bytes, bf16 dispatch and combine
  double dp_ep_fp8_dispatch = 0;    // bytes, FP8 dispatch, bf16 combine
  int64_t tp_collectives = 0;       // all-reduces per token (2 per layer)
  int64_t ep_collectives = 0;       // all-to-alls per token (2 per MoE layer)
};

// An Error when ranks < 1 or activation_bytes < 1.
CommPerToken communication_per_token(const ModelConfig& c, int ranks, int activation_bytes = 2);

}  // namespace dsi::plan
