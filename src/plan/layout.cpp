#include "plan/layout.h"

#include <algorithm>

#include "core/int_math.h"

namespace dsi::plan {

std::string Layout::name() const {
  std::string s = pp > 1 ? fmt::format("PP{} x ", pp) : "";
  if (ep > 1) {
    s += fmt::format("EP{}, attention ", ep);
    if (tp > 1 && dp > 1) return s + fmt::format("TP{} x DP{}", tp, dp);
    return s + (dp > 1 ? fmt::format("DP{}", dp) : fmt::format("TP{}", tp));
  }
  if (tp == 1 && dp == 1) return pp > 1 ? fmt::format("PP{}", pp) : "1 GPU";
  return s + fmt::format("TP{}", tp);
}

namespace {

std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

}  // namespace

std::vector<Layout> candidate_layouts(const ModelConfig& c, int n_gpus, int gpus_per_node) {
  std::vector<Layout> out;
  if (n_gpus == 1) return {Layout{}};
  // Dense parallelism: TP inside a stage, stages across the rest.
  for (int pp : divisors(n_gpus)) out.push_back({pp, n_gpus / pp, 1, 1});
  if (c.n_routed_experts == 0) return out;
  // Expert parallelism over a whole stage, attention TP x DP inside it; one stage, or one
  // stage per node when there are several nodes.
  std::vector<int> stage_counts{1};
  int n_nodes = n_gpus / gpus_per_node;
  if (n_nodes > 1) stage_counts.push_back(n_nodes);
  for (int pp : stage_counts) {
    int stage = n_gpus / pp;
    if (stage < 2) continue;
    for (int tp : divisors(stage)) out.push_back({pp, tp, stage / tp, stage});
  }
  return out;
}

std::optional<std::string> layout_problem(const ModelConfig& c, const Layout& l) {
  if (c.n_heads % l.tp != 0)
    return fmt::format("TP{} does not divide num_attention_heads = {}", l.tp, c.n_heads);
  if (l.pp > c.n_layers) return fmt::format("PP{} has more stages than the {} layers", l.pp, c.n_layers);
  if (l.ep > 1 && l.ep > c.n_routed_experts)
    return fmt::format("EP{} has more ranks than the {} routed experts", l.ep, c.n_routed_experts);
  return std::nullopt;
}

int64_t activation_bytes(const ModelConfig& c, const Layout& l, const ServingRequest& req) {
  const int64_t t = req.max_batched_tokens, h = c.hidden_size, nh_local = c.n_heads / l.tp;
  const int64_t bf16 = 2;
  const int64_t residual = 2 * t * h * bf16;  // residual stream + normed copy
  // Prefill attention with keys and values expanded per local head, plus the latents.
  const int64_t attention =
      t * (nh_local * (2 * c.qk_head_dim() + 2 * c.v_head_dim) + c.kv_cache_dim() + c.q_lora_rank.value_or(0)) * bf16;
  int64_t ffn = 0;
  if (c.n_routed_experts == 0 || c.first_k_dense_replace > 0 || c.moe_layer_freq > 1)
    ffn = 3 * t * ceil_div(c.intermediate_size, l.tp) * bf16;  // gate, up, gate*up
  if (c.n_routed_experts > 0) {
    // Token copies (token x chosen expert) this GPU's experts receive on average.
    const int64_t pairs = ceil_div(t * l.dp * c.num_experts_per_tok, l.ep);
    const int64_t per_pair = h + 3 * ceil_div(c.moe_intermediate_size, l.expert_tp());
    const int64_t shared = 3 * t * ceil_div(c.moe_intermediate_size * c.n_shared_experts, l.tp);
    const int64_t router = t * c.n_routed_experts * 2;  // float32 scores, in bf16 units
    ffn = std::max(ffn, (pairs * per_pair + shared + router) * bf16);
  }
  const int64_t n_logit_rows = std::min(t, req.concurrency);
  const int64_t logits = n_logit_rows * ceil_div(c.vocab_size, l.tp) * 4;  // float32 for sampling
  return residual + std::max(attention, ffn) + logits;
}

CommBytes comm_bytes_per_token(const ModelConfig& c, const Layout& l, int first_layer, int end_layer,
                               bool first_stage, bool last_stage, bool fp8_dispatch) {
  const double h_bytes = 2.0 * double(c.hidden_size);  // bf16 hidden state of one token
  CommBytes b;
  // Ring all-reduce: every rank sends 2 (n-1)/n of the buffer.
  auto all_reduce = [&](double bytes) {
    if (l.tp == 1) return;
    b.tp += 2.0 * (l.tp - 1) / l.tp * bytes;
    ++b.n_tp_ops;
  };
  if (first_stage) all_reduce(h_bytes);  // vocab-parallel embedding
  for (int i = first_layer; i < end_layer; ++i) {
    all_reduce(h_bytes);  // after o_proj
    if (!c.is_moe_layer(i) || l.ep == 1) {
      all_reduce(h_bytes);  // after down_proj (dense MLP, or TP-split experts)
      continue;
    }
    // Dispatch each token to its k experts (FP8 with per-128 scales when the GEMMs run FP8, as
    // DeepEP does) and combine the bf16 results; a (ep-1)/ep share of them lives on other GPUs.
    // A TP group shares its tokens, so each rank moves 1/tp of them.
    const double dispatch = fp8_dispatch ? double(c.hidden_size) * (1.0 + 4.0 / 128) : h_bytes;
    b.ep += c.num_experts_per_tok * (dispatch + h_bytes) * (l.ep - 1) / l.ep / l.tp;
    b.n_ep_ops += 2;
    all_reduce(h_bytes);  // shared experts split by TP
  }
  if (last_stage && l.tp > 1) {
    b.tp += 4.0 * double(c.vocab_size) / l.tp;  // gather float32 logits on one rank
    ++b.n_tp_ops;
  }
  if (!last_stage) {
    b.pp += h_bytes;
    ++b.n_pp_ops;
  }
  return b;
}

}  // namespace dsi::plan
