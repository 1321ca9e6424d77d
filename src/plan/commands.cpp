#include "plan/commands.h"

#include <cstdio>
#include <memory>

#include "core/log.h"
#include "plan/auto_gpus.h"
#include "plan/report.h"
#include "topo/nvml.h"

namespace dsi {

namespace {

struct PlanOptions {
  std::string model, gpus, weights, kv_dtype = "bf16", calibration;
  int nodes = 1;
  int64_t context = 32768, concurrency = 64, max_batched_tokens = 8192;
  int64_t train_seq_len = 4096, micro_batch = 1, lora_rank = 16;
  bool json = false, with_mtp = false;
  std::string nvml_library = topo::kNvmlLibrary;
};

void require_range(const char* flag, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) fail("{} {}: must be from {} to {}", flag, v, lo, hi);
}

void run_plan(const PlanOptions& o) {
  using namespace plan;
  require_range("--context", o.context, 1, int64_t(1) << 24);
  require_range("--concurrency", o.concurrency, 1, int64_t(1) << 20);
  require_range("--max-num-batched-tokens", o.max_batched_tokens, 1, int64_t(1) << 24);
  require_range("--train-seq-len", o.train_seq_len, 1, int64_t(1) << 24);
  require_range("--micro-batch", o.micro_batch, 1, 4096);
  require_range("--lora-rank", o.lora_rank, 1, 65536);
  PlanRequest req;
  if (!o.weights.empty()) req.weights = parse_weight_dtype(o.weights);
  req.serving.kv = parse_kv_dtype(o.kv_dtype);
  req.serving.context = o.context;
  req.serving.concurrency = o.concurrency;
  req.serving.max_batched_tokens = o.max_batched_tokens;
  req.serving.with_mtp = o.with_mtp;
  req.training = {o.train_seq_len, o.micro_batch, o.lora_rank};
  Calibration cal = o.calibration.empty() ? Calibration{} : Calibration::from_file(o.calibration);
  std::string gpus = o.gpus;
  if (gpus == "auto") {
    gpus = plan::gpus_spec_from_topology(topo::read_topology(o.nvml_library), GpuTable::builtin());
    spdlog::info("--gpus auto: {} (from NVML)", gpus);
  }
  Cluster cluster = parse_cluster(gpus, o.nodes, GpuTable::builtin());
  Plan p = make_plan(load_model_source(o.model), std::move(cluster), req, cal);
  std::string out = o.json ? plan_json(p).dump(2) + "\n" : plan_text(p);
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void register_plan_commands(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* sub = app.add_subcommand(
      "plan",
      "Before you download or rent anything: does a DeepSeek model fit on these GPUs, how to lay it out "
      "(TP / EP / PP), how many sequences the KV cache holds, and what fine-tuning needs. Formulas: docs/plan.md");
  sub->add_option("--model", o->model,
                  "Built-in name (" + plan::builtin_model_list() + ", or its hub id such as deepseek-ai/DeepSeek-V3" +
                      "; the published config.json is in the binary), a checkpoint folder, or a config.json")
      ->required();
  sub->add_option("--gpus", o->gpus,
                  "GPUs of one node as COUNTxNAME, comma-separated groups allowed: 8xH200, 8xH100-80GB, 4xA100-40GB, "
                  "2xRTX4090, or COUNTxMEMGB (8x96GB) for a GPU not in the table; auto: this machine's GPUs (dsinfer topo)")
      ->required();
  sub->add_option("--nodes", o->nodes, "Nodes, each with the --gpus GPUs")->capture_default_str();
  sub->add_option("--context", o->context, "Tokens per sequence (prompt + output) the KV cache must hold")
      ->capture_default_str();
  sub->add_option("--concurrency", o->concurrency, "Sequences to serve at the same time")->capture_default_str();
  sub->add_option("--weights", o->weights,
                  "Weight dtype on the GPU: bf16, fp8 (128x128 block scales), int8 or int4 (group 128); default: "
                  "the checkpoint's (fp8 when config.json has quantization_config, else bf16)");
  sub->add_option("--kv-dtype", o->kv_dtype, "KV-cache dtype: bf16 or fp8")->capture_default_str();
  sub->add_option("--max-num-batched-tokens", o->max_batched_tokens,
                  "Tokens in one engine step (prefill chunk); sizes the activation memory")
      ->capture_default_str();
  sub->add_flag("--with-mtp", o->with_mtp, "Also load the MTP modules (for speculative decoding)");
  sub->add_option("--calibration", o->calibration,
                  "JSON file overriding the planner's overhead constants (keys: docs/plan.md \"Calibration\")");
  sub->add_option("--train-seq-len", o->train_seq_len, "Fine-tuning: tokens per training sequence")
      ->capture_default_str();
  sub->add_option("--micro-batch", o->micro_batch, "Fine-tuning: sequences per GPU per step")->capture_default_str();
  sub->add_option("--lora-rank", o->lora_rank, "Fine-tuning: LoRA rank")->capture_default_str();
  sub->add_flag("--json", o->json, "Print the plan as JSON instead of a table");
  sub->add_option("--nvml-library", o->nvml_library, "--gpus auto: the NVML library to load")->capture_default_str();
  sub->callback([o] { run_plan(*o); });
}

}  // namespace dsi
