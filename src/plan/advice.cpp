#include "plan/advice.h"

#include <algorithm>
#include <cmath>

namespace dsi::plan {

std::string format_gib(double bytes) { return fmt::format("{:.1f} GiB", bytes / double(1ull << 30)); }

namespace {

bool speeds_known(const Plan& p) { return p.gpu.hbm_gbs > 0; }

// Higher is better: estimated decode throughput, or capacity when speeds are unknown.
double score(const Plan& p, const LayoutEstimate& e) {
  return speeds_known(p) ? e.decode_tokens_per_s_total : double(e.max_concurrent_seqs);
}

void explain_nothing_fits(Plan& p) {
  const LayoutEstimate* smallest = nullptr;
  for (const LayoutEstimate& e : p.layouts)
    if (!e.problem && (!smallest || e.bytes_per_gpu < smallest->bytes_per_gpu)) smallest = &e;
  if (!smallest) {
    p.reason = "no layout can run this model on these GPUs";
    return;
  }
  const WeightBytes& w = p.bytes_of(p.gpu_weights);
  const double per_gpu = double(smallest->usable_bytes - smallest->activation_bytes - smallest->overhead_bytes);
  const int64_t n_needed = per_gpu > 0 ? int64_t(std::ceil(double(w.main) / per_gpu)) : 0;
  p.reason = fmt::format(
      "nothing fits: the smallest layout, {}, needs {} per GPU before any KV cache against {} usable; the {} "
      "weights alone need about {} GPUs of this kind",
      smallest->layout.name(), format_gib(double(smallest->bytes_per_gpu)), format_gib(double(smallest->usable_bytes)),
      weight_dtype_name(p.gpu_weights), n_needed);
}

}  // namespace

void recommend(Plan& p) {
  std::vector<size_t> fitting;
  for (size_t i = 0; i < p.layouts.size(); ++i)
    if (!p.layouts[i].problem && p.layouts[i].fits) fitting.push_back(i);
  if (fitting.empty()) return explain_nothing_fits(p);
  // Best score; ties go to the layout that sends fewer bytes per token.
  std::stable_sort(fitting.begin(), fitting.end(), [&](size_t a, size_t b) {
    const LayoutEstimate &x = p.layouts[a], &y = p.layouts[b];
    if (score(p, x) != score(p, y)) return score(p, x) > score(p, y);
    return x.comm_bytes_per_token < y.comm_bytes_per_token;
  });
  p.recommended = fitting[0];
  const LayoutEstimate& best = p.layouts[fitting[0]];
  const int64_t context = p.serving.context;
  if (!speeds_known(p)) {
    p.reason = fmt::format("{} holds the most sequences of {} tokens ({}) of the {} layouts that fit", best.layout.name(),
                           context, best.max_concurrent_seqs, fitting.size());
    return;
  }
  std::string next;
  if (fitting.size() > 1) {
    const LayoutEstimate& second = p.layouts[fitting[1]];
    next = fmt::format("; next best {} at {:.0f} tok/s", second.layout.name(), second.decode_tokens_per_s_total);
  }
  p.reason = fmt::format(
      "{} has the highest estimated decode throughput of the {} layouts that fit: {:.0f} tok/s for {} concurrent "
      "sequences of {} tokens (it holds {}){}",
      best.layout.name(), fitting.size(), best.decode_tokens_per_s_total, best.decode_batch, context,
      best.max_concurrent_seqs, next);
}

namespace {

void warn_hardware(Plan& p) {
  const GpuSpec& g = p.gpu;
  if (p.cluster.mixed())
    p.warnings.push_back(fmt::format(
        "mixed GPU models in one --gpus list ({}): every layout runs at the slowest GPU and within the smallest "
        "memory ({:g} GiB), and different models share no NVLink; use one GPU model per node",
        g.name, g.memory_gib));
  if (p.requested_weights == WeightDtype::fp8 && p.gpu_weights == WeightDtype::bf16) {
    const double fp8 = double(p.bytes_of(WeightDtype::fp8).main);
    const double bf16 = double(p.bytes_of(WeightDtype::bf16).main);
    p.warnings.push_back(fmt::format(
        "FP8 weights on {} (no FP8 tensor cores{}): they must be dequantised to bf16 at load, {} instead of {}; "
        "planned as bf16. Use Hopper or Ada GPUs for FP8, or an int8 / int4 checkpoint",
        g.name, p.cluster.mixed() ? " on all of them" : "", format_gib(bf16), format_gib(fp8)));
  }
  if (!g.bf16 && !g.is_custom())
    p.warnings.push_back(fmt::format("{} has no bf16 support: it would run fp16, whose range DeepSeek activations "
                                     "can exceed",
                                     g.name));
  if (g.is_custom())
    p.warnings.push_back(fmt::format("{} is not in the GPU table: planned from its memory alone, PCIe links assumed, "
                                     "no speed estimates",
                                     g.name));
}

void warn_layout(Plan& p) {
  const int n = p.cluster.n_gpus();
  const bool pcie = p.gpu.link == LinkType::pcie;
  if (pcie && n > 1)
    p.warnings.push_back(
        "tensor parallelism over PCIe: every layer all-reduces the hidden state twice across PCIe, so TP layouts "
        "are communication bound here; prefer EP with attention DP (MoE) or pipeline parallelism");
  if (!p.recommended) return;
  const LayoutEstimate& r = p.layouts[*p.recommended];
  if (r.layout.tp > p.cluster.gpus_per_node())
    p.warnings.push_back(fmt::format("{} runs tensor parallelism across nodes: its all-reduces cross the network",
                                     r.layout.name()));
  if (r.max_concurrent_seqs < p.serving.concurrency)
    p.warnings.push_back(fmt::format(
        "too little memory left for the KV cache: {} holds {} sequence{} of {} tokens, fewer than --concurrency {}; "
        "shorten --context, use --kv-dtype fp8, a smaller --weights dtype, or more GPUs",
        r.layout.name(), r.max_concurrent_seqs, r.max_concurrent_seqs == 1 ? "" : "s", p.serving.context,
        p.serving.concurrency));
}

}  // namespace

void add_warnings(Plan& p) {
  const ModelConfig& c = p.model.config;
  if (p.serving.context > c.max_position_embeddings)
    p.warnings.push_back(fmt::format("--context {} exceeds the model's max_position_embeddings = {}",
                                     p.serving.context, c.max_position_embeddings));
  warn_hardware(p);
  warn_layout(p);
}

}  // namespace dsi::plan
