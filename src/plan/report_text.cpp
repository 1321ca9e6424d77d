#include <algorithm>

#include <fmt/format.h>

#include "plan/advice.h"
#include "plan/report.h"

namespace dsi::plan {

namespace {

std::string billions(int64_t n) { return fmt::format("{:.2f} B", double(n) / 1e9); }

std::string bytes_auto(double b) {
  if (b >= double(1ull << 30)) return format_gib(b);
  if (b >= double(1 << 20)) return fmt::format("{:.1f} MiB", b / double(1 << 20));
  return fmt::format("{:.1f} KiB", b / 1024.0);
}

void header(const Plan& p, std::string& out) {
  out += fmt::format("dsinfer plan: {} ({})\n", p.model.name, p.model.origin);
  out += fmt::format("GPUs:    {}\n", p.cluster.describe());
  out += fmt::format("Serving: weights {}{}, KV cache {}, context {}, concurrency {}, {} tokens per step\n\n",
                     weight_dtype_name(p.requested_weights),
                     p.gpu_weights != p.requested_weights
                         ? fmt::format(" (held as {} on the GPU)", weight_dtype_name(p.gpu_weights))
                         : std::string(),
                     kv_dtype_name(p.serving.kv), p.serving.context, p.serving.concurrency,
                     p.serving.max_batched_tokens);
}

void parameters(const Plan& p, std::string& out) {
  const ParamCounts& pc = p.params;
  out += "Parameters\n";
  for (int g = 0; g < n_param_groups; ++g)
    out += fmt::format("  {:<22}{:>12}\n", param_group_name(static_cast<ParamGroup>(g)),
                       billions(pc.by_group[static_cast<size_t>(g)]));
  out += fmt::format("  {:<22}{:>12}  ({} parameters)\n", "total", billions(pc.total), pc.total);
  out += fmt::format("  {:<22}{:>12}  (per token, input embedding excluded; {} with it)\n", "active",
                     billions(pc.active), billions(pc.active_with_embedding));
  if (pc.mtp > 0)
    out += fmt::format("  {:<22}{:>12}  ({} without its embedding and head copies; loaded with --with-mtp)\n",
                       "MTP modules", billions(pc.mtp), billions(pc.mtp_unique));
  out += "\n";
}

void weights_and_kv(const Plan& p, std::string& out) {
  out += "Weights             main model        MTP\n";
  for (const auto& [d, b] : p.weight_bytes)
    out += fmt::format("  {:<6}{:>22}{:>11}{}\n", weight_dtype_name(d), format_gib(double(b.main)),
                       format_gib(double(b.mtp)), d == p.gpu_weights ? "   <- planned" : "");
  const ModelConfig& c = p.model.config;
  out += fmt::format("KV cache: {} bytes per token = {} layers x ({} + {}) x {} bytes ({}); {} per {}-token sequence\n\n",
                     p.kv_bytes_per_token, c.n_layers, c.kv_lora_rank, c.qk_rope_head_dim,
                     p.serving.kv == KvDtype::bf16 ? 2 : 1, kv_dtype_name(p.serving.kv),
                     bytes_auto(double(p.kv_bytes_per_token) * double(p.serving.context)), p.serving.context);
}

void layouts(const Plan& p, std::string& out) {
  const int n = p.cluster.n_gpus();
  out += fmt::format("Layouts on {} GPU{} (memory per GPU: weights + activations + overheads; KV cache gets the rest "
                     "of {})\n",
                     n, n == 1 ? "" : "s", format_gib(p.layouts.empty() ? 0 : double(p.layouts[0].usable_bytes)));
  out += fmt::format("  {:<30}{:>12}{:>12}{:>6}{:>8}{:>12}{:>10}{:>12}\n", "layout", "weights", "total", "fits",
                     "seqs", "comm/token", "tok/s 1", "tok/s all");
  for (size_t i = 0; i < p.layouts.size(); ++i) {
    const LayoutEstimate& e = p.layouts[i];
    std::string mark = p.recommended == i ? "* " : "  ";
    if (e.problem) {
      out += fmt::format("{}{:<30}  n/a: {}\n", mark, e.layout.name(), *e.problem);
      continue;
    }
    const bool speed = e.decode_tokens_per_s_single > 0;
    out += fmt::format("{}{:<30}{:>12}{:>12}{:>6}{:>8}{:>12}{:>10}{:>12}\n", mark, e.layout.name(),
                       format_gib(double(e.weight_bytes_per_gpu)), format_gib(double(e.bytes_per_gpu)),
                       e.fits ? "yes" : "no", e.max_concurrent_seqs, bytes_auto(e.comm_bytes_per_token),
                       speed ? fmt::format("{:.1f}", e.decode_tokens_per_s_single) : "n/a",
                       speed && e.decode_batch > 0 ? fmt::format("{:.0f}", e.decode_tokens_per_s_total) : "n/a");
  }
  out += fmt::format(
      "  seqs: sequences of {} tokens the KV cache holds; tok/s all: decode at min(seqs, {}) sequences\n",
      p.serving.context, p.serving.concurrency);
  // Honest about the engine: the planner sizes layouts dsinfer serve does not run yet.
  const bool planned_only = std::any_of(p.layouts.begin(), p.layouts.end(), [](const LayoutEstimate& e) {
    return e.layout.pp > 1 || (e.layout.tp > 1 && e.layout.dp > 1);
  });
  if (planned_only)
    out += "  dsinfer serve runs TP, EP and DP-attention layouts; pipeline stages (PP) and attention TP x DP are "
           "sized here but not run yet (docs/multi-rank.md)\n";
  out += "\n";
  out += p.recommended ? fmt::format("Recommended: {}\n  {}.\n", p.layouts[*p.recommended].layout.name(), p.reason)
                       : fmt::format("Recommended: none\n  {}.\n", p.reason);
  if (!p.warnings.empty()) {
    out += "\nWarnings\n";
    for (const std::string& w : p.warnings) out += "  - " + w + "\n";
  }
}

// docs/design/parallel.md's model; the layouts' comm/token above is what one GPU sends.
void communication(const Plan& p, std::string& out) {
  if (!p.communication) return;
  const CommPerToken& m = *p.communication;
  out += fmt::format("\nCommunication per generated token on {} GPUs (all links together, bf16 activations; "
                     "docs/design/parallel.md)\n",
                     m.ranks);
  out += fmt::format("  {:<44}{:>12}  ({} all-reduces)\n", "TP all-reduce, 2 per layer", bytes_auto(m.tp_all_reduce),
                     m.tp_collectives);
  out += fmt::format("  {:<44}{:>12}  ({} all-to-alls; {} with FP8 dispatch)\n",
                     "DP attention + EP all-to-all, per MoE layer", bytes_auto(m.dp_ep_all_to_all), m.ep_collectives,
                     bytes_auto(m.dp_ep_fp8_dispatch));
}

void finetune(const Plan& p, std::string& out) {
  const FinetuneEstimate& f = p.finetune;
  const int n = p.cluster.n_gpus();
  out += fmt::format("\nFine-tuning on the same {} GPU{} (data parallel; activations per GPU: {} with gradient "
                     "checkpointing, {} without)\n",
                     n, n == 1 ? "" : "s", format_gib(f.activations.checkpointed), format_gib(f.activations.full));
  out += fmt::format("  {:<44}{:>14}{:>14}{:>14}{:>6}\n", "method", "model states", "total/GPU", "host/node", "fits");
  for (const FinetuneRow& r : f.rows)
    out += fmt::format("  {:<44}{:>14}{:>14}{:>14}{:>6}\n", r.name, format_gib(r.model_state_bytes),
                       format_gib(r.total_bytes), r.cpu_bytes_per_node > 0 ? format_gib(r.cpu_bytes_per_node) : "-",
                       r.fits ? "yes" : "no");
  out += fmt::format("  LoRA trains {} parameters (rank {} on the attention and MLP / expert projections); "
                     "sequence {} x micro-batch {}\n",
                     billions(f.lora_params), f.lora_rank, f.seq_len, f.micro_batch);
}

}  // namespace

std::string plan_text(const Plan& p) {
  std::string out;
  header(p, out);
  parameters(p, out);
  weights_and_kv(p, out);
  layouts(p, out);
  communication(p, out);
  finetune(p, out);
  return out;
}

}  // namespace dsi::plan
