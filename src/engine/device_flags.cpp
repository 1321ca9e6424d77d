#include "engine/device_flags.h"

namespace dsi {

void add_device_flags(CLI::App* cmd, BackendOptions& o) {
  cmd->add_option_function<std::string>(
         "--device", [&o](const std::string& text) { o.device = parse_device(text); },
         "where the model runs: cpu, cuda, or auto (cuda when this build has it and a GPU is present, else cpu; "
         "the choice is logged)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->default_str("auto");
  // vLLM's spellings map onto dsinfer's names; values with no implementation yet are refused
  // here with what to use instead (a copied command line must not silently run another dtype).
  cmd->add_option("--dtype", o.dtype,
                  "activation dtype: auto (bfloat16 on a GPU, float32 on the CPU), float32 / float (on a GPU: the "
                  "strict check, TF32 off), bfloat16 (GPU only); float16 / half: not supported yet")
      ->transform([](std::string v) {
        if (v == "float") return std::string("float32");
        if (v == "float16" || v == "half")
          throw CLI::ValidationError(v + " is not supported yet: use bfloat16 (GPU) or float32");
        return v;
      })
      ->check(CLI::IsMember({"auto", "float32", "bfloat16"}))
      ->capture_default_str();
  cmd->add_option("--kv-cache-dtype", o.kv_cache_dtype,
                  "KV cache dtype: auto (bfloat16 on a GPU, float32 on the CPU), float32, bfloat16 / bf16 (GPU "
                  "only); fp8: not supported yet")
      ->transform([](std::string v) {
        if (v == "bf16") return std::string("bfloat16");
        if (v == "fp8" || v == "fp8_e4m3" || v == "fp8_e5m2")
          throw CLI::ValidationError(
                                     v + " is not supported yet: use auto, bfloat16 (GPU) or float32");
        return v;
      })
      ->check(CLI::IsMember({"auto", "float32", "bfloat16"}))
      ->capture_default_str();
  cmd->add_flag("--enforce-eager", o.enforce_eager,
                "GPU: launch every decode step op by op instead of replaying it as a CUDA graph (graphs are "
                "captured per padded batch size on first use; docs/serving.md)");
}

void add_dump_flags(CLI::App* cmd, DumpFlags& f) {
  cmd->add_option("--dump-tensors", f.tensors,
                  "debug: dump these named intermediates of every step (comma-separated globs, e.g. q_rope,attn_out "
                  "or '*'; names in docs/design/backend.md)");
  cmd->add_option("--dump-layers", f.layers, "debug: only these layers' tensors (comma-separated, e.g. 0,3; default all)");
  cmd->add_option("--dump-dir", f.dir, "debug: folder for the dumps, one DIR/step<k>.safetensors per step");
}

}  // namespace dsi
