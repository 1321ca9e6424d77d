#include "plan/comm_model.h"

#include "core/error.h"

namespace dsi::plan {

CommPerToken communication_per_token(const ModelConfig& c, int ranks, int b) {
  if (ranks < 1) fail("communication model: {} ranks", ranks);
  if (b < 1) fail("communication model: {} bytes per activation value", b);
  int moe_layers = 0;
  for (int l = 0; l < c.n_layers; ++l) moe_layers += c.is_moe_layer(l) ? 1 : 0;
  const double W = ranks, H = double(c.hidden_size), L = c.n_layers, M = moe_layers, k = c.num_experts_per_tok;
  CommPerToken r;
  r.ranks = ranks;
  r.tp_all_reduce = L * 2 * 2 * (W - 1) * H * b;
  const double remote = (W - 1) / W;
  r.dp_ep_all_to_all = M * 2 * k * remote * H * b;
  r.dp_ep_fp8_dispatch = M * k * remote * H * (1 + b);
  r.tp_collectives = ranks > 1 ? 2 * int64_t(c.n_layers) : 0;
  r.ep_collectives = ranks > 1 ? 2 * int64_t(moe_layers) : 0;
  return r;
}

}  // namespace dsi::plan
