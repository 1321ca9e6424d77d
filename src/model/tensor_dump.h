#pragma once
// Debug dumps of named intermediates (STYLE.md 16): the model names every intermediate of a
// layer ("layer.3.q_rope"); when a name and layer are chosen, its rows of the step are copied
// to the host (through the backend, on any backend) and each step's chosen tensors go to
// DIR/step<k>.safetensors, in their own dtype. tools/compare_dumps.py compares two dumps.
//
// Names (n = the step's tokens, m = n * top_k, r = logit rows):
//   embed [n, hidden]; final_norm [r, hidden]; logits [r, vocab]    (no layer prefix)
//   layer.L.: attn_norm [n, hidden], q_a_norm [n, q_lora_rank], q [n, heads * (dn + dr)] before
//   rope, q_rope after it, kv [n, r + dr] (latent normed) before rope, kv_rope after it (the
//   cache row), q_full [n, heads * (r + dr)], o_latent [n, heads * r], o [n, heads * dv],
//   attn_out [n, hidden], attn_residual [n, hidden], ffn_norm [n, hidden], and for MoE layers
//   router_logits [n, E], expert_ids [n, k], expert_weights [n, k], x_sorted [m, hidden],
//   y_sorted [m, hidden], shared_out [n, hidden], moe_out [n, hidden] (the routed sum plus
//   shared_out, before any all-reduce); then ffn_out and
//   layer_out [n, hidden].
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"

namespace dsi {

struct DumpOptions {
  std::vector<std::string> patterns;  // glob patterns of names ("q_rope", "attn_*", "*"); empty: no dump
  std::vector<int> layers;            // layers whose tensors are dumped; empty: every layer
  std::string dir;                    // where step<k>.safetensors go (created)

  // From the flags' comma-separated text; errors name the flag.
  static DumpOptions parse(const std::string& tensors, const std::string& layers, const std::string& dir);
  bool enabled() const { return !patterns.empty(); }
};

// Not thread-safe: the thread running the model calls it.
class TensorDump {
 public:
  TensorDump(Backend& backend, DumpOptions options);

  bool wants(int layer, std::string_view name) const;  // layer -1: not a layer's tensor
  // Forgets what an unfinished (failed) step recorded.
  void begin_step() { recorded_.clear(); }
  // Copies `t` to the host now (so later in-place ops do not change what is recorded).
  void record(int layer, std::string_view name, const Tensor& t);
  // Writes this step's tensors (if any) to dir/step<k>.safetensors; the next step is k + 1.
  void end_step();
  int n_steps() const { return step_; }

 private:
  struct Recorded {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<unsigned char> bytes;
  };
  Backend& backend_;
  DumpOptions options_;
  std::vector<Recorded> recorded_;
  int step_ = 0;
};

}  // namespace dsi
