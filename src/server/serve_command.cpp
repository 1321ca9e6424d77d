// `dsinfer serve`: its flags (vLLM's names where the meaning is the same) and the call into
// run_serve.
#include <cstdlib>
#include <memory>

#include "core/log.h"
#include "engine/device_flags.h"
#include "engine/parallel_flags.h"
#include "engine/model_runner.h"
#include "server/commands.h"
#include "server/serve.h"

namespace dsi {

namespace {

struct ServeFlags {
  server::ServeOptions options;
  std::string max_body = "16MiB";
  bool no_prefix_caching = false;
};

void add_model_flags(CLI::App* cmd, ServeFlags& f) {
  auto& o = f.options;
  cmd->add_option("--model", o.source.path,
                  "Hugging Face checkpoint folder (config.json + *.safetensors); default: the embedded demo model "
                  "(DeepSeek-V3-shaped, random weights) with the embedded DeepSeek-V3 tokenizer");
  cmd->add_option("--tokenizer", o.tokenizer_dir,
                  "folder with tokenizer.json and tokenizer_config.json (default: the model folder, else the embedded "
                  "DeepSeek-V3 tokenizer)");
  cmd->add_option("--chat-template", o.chat_template_file, "Jinja chat template file replacing the tokenizer's");
  cmd->add_option("--load-format", o.source.load_format, "auto: read the weights; dummy: random weights")
      ->check(CLI::IsMember({"auto", "safetensors", "dummy"}))
      ->capture_default_str();
  cmd->add_option("--seed", o.source.seed, "seed of --load-format dummy weights")->capture_default_str();
  cmd->add_option("--served-model-name", o.served_model_names,
                  "model name(s) the API accepts; the first is reported (default: the model folder's name)");
  cmd->add_option("--threads", o.threads, "CPU threads of the model (0: one per core)")->capture_default_str();
  add_device_flags(cmd, o.backend);
  add_parallel_flags(cmd, o.parallel);
}

void add_engine_flags(CLI::App* cmd, ServeFlags& f) {
  auto& o = f.options;
  cmd->add_option("--max-model-len", o.engine.max_model_len,
                  "context length: prompt + output tokens (0: the model's, limited by the KV cache)")
      ->capture_default_str();
  cmd->add_option("--max-num-seqs", o.engine.max_num_seqs, "sequences in the running batch at most")
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", o.engine.max_num_batched_tokens,
                  "tokens per engine step (prefill chunks + decodes)")
      ->capture_default_str();
  cmd->add_option("--max-waiting-requests", o.engine.max_waiting_requests,
                  "sequences waiting beyond a full running batch; a request whose choices (prompts x n) do "
                  "not all fit now is answered 503, one that never fits 400")
      ->capture_default_str();
  cmd->add_option("--kv-cache-memory", o.kv_cache_memory,
                  "memory of the paged KV cache (e.g. 512MiB, 4GiB); auto: 1GiB on the CPU, on a GPU what "
                  "--gpu-memory-utilization leaves after weights and workspace")
      ->capture_default_str();
  cmd->add_option("--block-size", o.block_size, "tokens per KV cache block")->capture_default_str();
  cmd->add_flag("--no-enable-prefix-caching", f.no_prefix_caching, "turn automatic prefix caching off");
  cmd->add_option("--gpu-memory-utilization", o.gpu_memory_utilization,
                  "fraction of the GPU's memory this process may use in all (weights, workspace, KV cache), as in "
                  "vLLM; sizes the KV cache when --kv-cache-memory is auto; no effect on the CPU backend")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
}

void add_http_flags(CLI::App* cmd, ServeFlags& f) {
  auto& o = f.options;
  cmd->add_option("--host", o.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", o.port, "TCP port (0: any free one, logged)")->capture_default_str();
  cmd->add_option("--api-key", o.api_key,
                  "require 'Authorization: Bearer KEY' on /v1/* (default: env DSINFER_API_KEY, else none)");
  cmd->add_option("--http-threads", o.http_threads, "I/O threads of the HTTP server")->capture_default_str();
  cmd->add_option("--max-request-body-bytes", f.max_body, "larger request bodies are answered 413")
      ->capture_default_str();
  cmd->add_option("--keep-alive-timeout", o.limits.keep_alive_timeout_s,
                  "seconds an idle keep-alive connection stays open")
      ->capture_default_str();
  cmd->add_option("--request-read-timeout", o.limits.read_timeout_s,
                  "seconds to receive a whole request once it started (else 408 and close)")
      ->capture_default_str();
  cmd->add_option("--write-timeout", o.limits.write_timeout_s,
                  "seconds a client may leave a response unread before it is cut and its request cancelled")
      ->capture_default_str();
  cmd->add_option("--shutdown-timeout", o.shutdown_timeout_s,
                  "seconds the drain after SIGTERM may take; then requests still in progress are cancelled (streams "
                  "end with an error event and [DONE], others get 503) and the server exits (0: cancel at once)")
      ->capture_default_str();
  cmd->add_option("--preprocess-threads", o.preprocess_threads,
                  "threads that parse, render chat templates for and tokenize requests, off the I/O threads")
      ->capture_default_str();
  cmd->add_option("--reasoning-parser", o.reasoning_parser,
                  "deepseek-r1: return the text before </think> as reasoning_content")
      ->check(CLI::IsMember({"deepseek-r1"}));
  cmd->add_option("--tool-call-parser", o.tool_call_parser,
                  "deepseek-v3: turn DeepSeek-V3 tool-call tokens into OpenAI tool_calls")
      ->check(CLI::IsMember({"deepseek-v3"}));
}

void run(ServeFlags& f) {
  auto& o = f.options;
  o.prefix_caching = !f.no_prefix_caching;
  o.limits.max_body_bytes = uint64_t(parse_byte_size(f.max_body, "--max-request-body-bytes"));
  if (o.api_key.empty())
    if (const char* env = std::getenv("DSINFER_API_KEY")) o.api_key = env;
  for (double t : {o.limits.keep_alive_timeout_s, o.limits.read_timeout_s, o.limits.write_timeout_s})
    if (!(t > 0)) fail("timeouts must be positive seconds, got {}", t);
  if (!(o.shutdown_timeout_s >= 0)) fail("--shutdown-timeout must be 0 or more seconds, got {}", o.shutdown_timeout_s);
  int code = server::run_serve(o);
  if (code != 0) std::exit(code);
}

}  // namespace

void register_server_commands(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API");
  auto flags = std::make_shared<ServeFlags>();
  add_model_flags(cmd, *flags);
  add_engine_flags(cmd, *flags);
  add_http_flags(cmd, *flags);
  cmd->callback([flags] { run(*flags); });
}

}  // namespace dsi
