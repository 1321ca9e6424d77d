#include "plan/report.h"

namespace dsi::plan {

namespace {

Json params_json(const ParamCounts& pc) {
  Json by_group = Json::object();
  for (int g = 0; g < n_param_groups; ++g)
    by_group[std::string(param_group_name(static_cast<ParamGroup>(g)))] = pc.by_group[static_cast<size_t>(g)];
  return by_group;
}

Json layout_json(const LayoutEstimate& e) {
  const Layout& l = e.layout;
  Json j = {{"name", l.name()}, {"tp", l.tp}, {"ep", l.ep}, {"pp", l.pp}, {"dp_attention", l.dp},
            {"expert_tp", l.expert_tp()}, {"n_gpus", l.n_gpus()}};
  if (e.problem) {
    j["valid"] = false;
    j["problem"] = *e.problem;
    j["fits"] = false;
    return j;
  }
  j["valid"] = true;
  j["weight_bytes_per_gpu"] = e.weight_bytes_per_gpu;
  j["activation_bytes_per_gpu"] = e.activation_bytes;
  j["overhead_bytes_per_gpu"] = e.overhead_bytes;
  j["bytes_per_gpu"] = e.bytes_per_gpu;
  j["usable_bytes_per_gpu"] = e.usable_bytes;
  j["kv_bytes_free_per_gpu"] = e.kv_bytes_free;
  j["kv_bytes_per_token_per_gpu"] = e.kv_bytes_per_token_per_gpu;
  j["fits"] = e.fits;
  j["max_concurrent_seqs"] = e.max_concurrent_seqs;
  j["comm_bytes_per_token"] = e.comm_bytes_per_token;
  j["comm_crosses_nodes"] = e.comm_crosses_nodes;
  j["decode_tokens_per_s_single"] = e.decode_tokens_per_s_single;
  j["decode_batch"] = e.decode_batch;
  j["decode_tokens_per_s_total"] = e.decode_tokens_per_s_total;
  return j;
}

Json finetune_json(const FinetuneEstimate& f) {
  Json rows = Json::array();
  for (const FinetuneRow& r : f.rows)
    rows.push_back({{"name", r.name},
                    {"method", r.method == FinetuneMethod::full ? "full" : "lora"},
                    {"zero_stage", r.zero_stage},
                    {"offload_optimizer", r.offload_optimizer},
                    {"offload_params", r.offload_params},
                    {"model_state_bytes_per_gpu", r.model_state_bytes},
                    {"cpu_bytes_per_node", r.cpu_bytes_per_node},
                    {"total_bytes_per_gpu", r.total_bytes},
                    {"fits", r.fits}});
  return {{"params", f.params},
          {"lora_params", f.lora_params},
          {"largest_layer_params", f.largest_layer_params},
          {"activation_bytes_per_gpu", f.activations.full},
          {"activation_bytes_per_gpu_checkpointed", f.activations.checkpointed},
          {"overhead_bytes_per_gpu", f.overhead_bytes},
          {"rows", rows}};
}

}  // namespace

Json plan_json(const Plan& p) {
  const ModelConfig& c = p.model.config;
  Json weight_bytes = Json::object();
  for (const auto& [d, b] : p.weight_bytes)
    weight_bytes[std::string(weight_dtype_name(d))] = {{"main", b.main}, {"mtp", b.mtp}};
  Json layouts = Json::array();
  for (const LayoutEstimate& e : p.layouts) layouts.push_back(layout_json(e));
  Json j = {
      {"model", {{"name", p.model.name}, {"origin", p.model.origin}, {"model_type", c.model_type}}},
      {"gpus",
       {{"spec", p.cluster.describe()},
        {"planned_gpu", p.gpu.name},
        {"n_gpus", p.cluster.n_gpus()},
        {"gpus_per_node", p.cluster.gpus_per_node()},
        {"n_nodes", p.cluster.n_nodes},
        {"memory_bytes", p.gpu.memory_bytes()},
        {"fp8", p.gpu.has_fp8()},
        {"link", link_type_name(p.gpu.link)}}},
      {"request",
       {{"context", p.serving.context},
        {"concurrency", p.serving.concurrency},
        {"max_num_batched_tokens", p.serving.max_batched_tokens},
        {"weights", weight_dtype_name(p.requested_weights)},
        {"weights_on_gpu", weight_dtype_name(p.gpu_weights)},
        {"kv_dtype", kv_dtype_name(p.serving.kv)},
        {"with_mtp", p.serving.with_mtp}}},
      {"total_params", p.params.total},
      {"active_params", p.params.active},
      {"active_params_with_embedding", p.params.active_with_embedding},
      {"mtp_params", p.params.mtp},
      {"mtp_unique_params", p.params.mtp_unique},
      {"params_by_group", params_json(p.params)},
      {"weight_bytes", p.bytes_of(p.gpu_weights).main + (p.serving.with_mtp ? p.bytes_of(p.gpu_weights).mtp : 0)},
      {"weight_bytes_by_dtype", weight_bytes},
      {"kv_bytes_per_token", p.kv_bytes_per_token},
      {"layouts", layouts},
      {"fits", p.recommended.has_value()},
      {"recommended", p.recommended ? Json(p.layouts[*p.recommended].layout.name()) : Json(nullptr)},
      {"recommended_index", p.recommended ? Json(*p.recommended) : Json(nullptr)},
      {"reason", p.reason},
      {"warnings", p.warnings},
      {"finetune", finetune_json(p.finetune)},
      {"calibration", p.calibration.to_json()},
  };
  if (p.communication) {
    const CommPerToken& m = *p.communication;
    j["communication_per_token"] = {{"ranks", m.ranks},
                                    {"tp_all_reduce_bytes", m.tp_all_reduce},
                                    {"dp_ep_all_to_all_bytes", m.dp_ep_all_to_all},
                                    {"dp_ep_fp8_dispatch_bytes", m.dp_ep_fp8_dispatch},
                                    {"tp_collectives", m.tp_collectives},
                                    {"ep_collectives", m.ep_collectives}};
  } else {
    j["communication_per_token"] = nullptr;
  }
  return j;
}

}  // namespace dsi::plan
