// `dsinfer serve`: its flags (vLLM's names where the meaning is the same, so that a `vllm
// serve` command line runs as it is; docs/serving.md maps them) and the call into run_serve.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>

#include "core/log.h"
#include "engine/device_flags.h"
#include "engine/parallel_flags.h"
#include "engine/model_runner.h"
#include "server/commands.h"
#include "server/serve.h"
#include "server/vllm_compat.h"

namespace dsi {

namespace {

struct ServeFlags {
  server::ServeOptions options;
  std::string model_tag;  // the positional MODEL of `vllm serve MODEL`
  std::string max_body = "16MiB";
  std::string max_model_len = "0";
  std::string scheduling_policy = "fcfs";
  std::string sampler = "auto";
  std::optional<uint64_t> seed;
  bool enable_auto_tool_choice = false;
  // vLLM flags that change nothing here: accepted so a copied command line runs, with a note.
  bool trust_remote_code = false, disable_log_requests = false, enable_log_requests = false,
       disable_log_stats = false;
  std::string uvicorn_log_level;
};

// vLLM spells the parser names with underscores (deepseek_v3), dsinfer with hyphens: both go.
std::string hyphenate(std::string s) {
  std::replace(s.begin(), s.end(), '_', '-');
  return s;
}

void add_model_flags(CLI::App* cmd, ServeFlags& f) {
  auto& o = f.options;
  cmd->add_option("MODEL", f.model_tag, "the model folder, as in `vllm serve MODEL` (same as --model)");
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
  cmd->add_option("--dummy-weight-seed", o.source.seed, "seed of --load-format dummy weights")->capture_default_str();
  cmd->add_option("--seed", f.seed,
                  "default sampling seed, as in vLLM: requests without a 'seed' get one drawn from it, so a fresh "
                  "server answering the same requests in the same order repeats its answers (default: random)");
  cmd->add_option("--served-model-name", o.served_model_names,
                  "model name(s) the API accepts; the first is reported (default: --model as given)");
  cmd->add_option("--generation-config", o.generation_config,
                  "request defaults (temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens): auto = "
                  "the model folder's generation_config.json, vllm = none, or a folder holding one")
      ->capture_default_str();
  cmd->add_option("--quantization,-q", o.quantization,
                  "fp8 or none: checked against the checkpoint (FP8 checkpoints run as stored; no online quantization)")
      ->check(CLI::IsMember({"fp8", "none"}));
  cmd->add_option("--threads", o.threads, "CPU threads of the model (0: one per core)")->capture_default_str();
  add_device_flags(cmd, o.backend);
  add_parallel_flags(cmd, o.parallel);
}

void add_engine_flags(CLI::App* cmd, ServeFlags& f) {
  auto& o = f.options;
  cmd->add_option("--max-model-len", f.max_model_len,
                  "context length: prompt + output tokens, e.g. 8192, 32k (32000), 32K (32768) (0: the model's, "
                  "limited by the KV cache)")
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
  cmd->add_option("--scheduling-policy", f.scheduling_policy,
                  "fcfs (first come, first served) or priority: requests' 'priority' field, lower served first and "
                  "preempted last, ties by arrival (under fcfs a non-zero priority is a 400)")
      ->check(CLI::IsMember({"fcfs", "priority"}))
      ->capture_default_str();
  cmd->add_option("--sampler", f.sampler,
                  "where tokens are chosen: auto = on the GPU where the backend has a sampler and the job is one "
                  "rank (the logits stay on the device; requests with a grammar or allowed_token_ids still sample "
                  "on the host), host = always on the host CPU; both give the same tokens for the same seed")
      ->check(CLI::IsMember({"auto", "host"}))
      ->capture_default_str();
  cmd->add_option("--kv-cache-memory", o.kv_cache_memory,
                  "memory of the paged KV cache (e.g. 512MiB, 4GiB); auto: 1GiB on the CPU, on a GPU what "
                  "--gpu-memory-utilization leaves after weights and workspace")
      ->capture_default_str();
  cmd->add_option("--block-size", o.block_size, "tokens per KV cache block")->capture_default_str();
  cmd->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", o.prefix_caching,
                "automatic prefix caching (default on; --no-enable-prefix-caching turns it off)");
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
                  "seconds the drain after SIGTERM, SIGINT or SIGUSR1 may take (under mpirun: SIGTERM to rank 0, or "
                  "SIGUSR1 to mpirun, which forwards it); then requests still in progress are cancelled (streams end "
                  "with an error event and [DONE], others get 503) and the server exits (0: cancel at once)")
      ->capture_default_str();
  cmd->add_option("--failure-exit-delay", o.failure_exit_delay_s,
                  "under mpirun: seconds rank 0 keeps answering after a rank of the group failed (GET /health 503 "
                  "with a JSON body naming the failed collective, new requests 503) before it exits with status 1 "
                  "so that a supervisor restarts the group (0 to 20)")
      ->check(CLI::Range(0.0, 20.0))
      ->capture_default_str();
  cmd->add_option("--preprocess-threads", o.preprocess_threads,
                  "threads that parse, render chat templates for and tokenize requests, off the I/O threads")
      ->capture_default_str();
  cmd->add_option("--reasoning-parser", o.reasoning_parser,
                  "deepseek-r1 (or vLLM's deepseek_r1): return the text before </think> as reasoning_content")
      ->transform(hyphenate)
      ->check(CLI::IsMember({"deepseek-r1"}));
  cmd->add_option("--tool-call-parser", o.tool_call_parser,
                  "deepseek-v3 (or vLLM's deepseek_v3): turn DeepSeek-V3 tool-call tokens into OpenAI tool_calls")
      ->transform(hyphenate)
      ->check(CLI::IsMember({"deepseek-v3"}));
  cmd->add_flag("--enable-auto-tool-choice", f.enable_auto_tool_choice,
                "as vLLM: tool_choice auto lets the model call tools (needs --tool-call-parser; dsinfer does this "
                "whenever a parser is set)");
  cmd->add_option("--max-logprobs", o.max_logprobs, "most alternatives a request may ask for (logprobs, top_logprobs)")
      ->capture_default_str();
}

// Accepted so that a copied `vllm serve` line runs; run() logs what each one does here.
void add_noted_flags(CLI::App* cmd, ServeFlags& f) {
  cmd->add_flag("--trust-remote-code", f.trust_remote_code, "vLLM: run the checkpoint's Python code; no effect");
  cmd->add_flag("--disable-log-requests", f.disable_log_requests, "vLLM: no effect (dsinfer does not log requests)");
  cmd->add_flag("--enable-log-requests", f.enable_log_requests,
                "vLLM: log every request; no effect (use --log-level debug before serve)");
  cmd->add_flag("--disable-log-stats", f.disable_log_stats, "vLLM: no periodic stats log; no effect (see /metrics)");
  cmd->add_option("--uvicorn-log-level", f.uvicorn_log_level, "vLLM: the HTTP server's log level; no effect");
}

void note_vllm_flags(const ServeFlags& f) {
  auto note = [](bool given, const char* flag, const char* what) {
    if (given) spdlog::info("{}: accepted for vLLM compatibility; {}", flag, what);
  };
  note(f.trust_remote_code, "--trust-remote-code", "dsinfer runs no code from checkpoints, so it has no effect");
  note(f.disable_log_requests, "--disable-log-requests", "dsinfer does not log requests anyway");
  note(f.enable_log_requests, "--enable-log-requests", "no effect: dsinfer has no per-request log");
  note(f.disable_log_stats, "--disable-log-stats", "no effect: dsinfer logs no periodic stats (see /metrics)");
  note(!f.uvicorn_log_level.empty(), "--uvicorn-log-level", "no effect: set dsinfer's with --log-level before serve");
  note(f.enable_auto_tool_choice, "--enable-auto-tool-choice",
       "tool_choice auto is parsed whenever --tool-call-parser is set");
}

void run(ServeFlags& f) {
  auto& o = f.options;
  if (!f.model_tag.empty()) {
    if (!o.source.path.empty() && o.source.path != f.model_tag)
      fail("two models given: MODEL {} and --model {} (give one)", f.model_tag, o.source.path);
    o.source.path = f.model_tag;
  }
  if (f.enable_auto_tool_choice && o.tool_call_parser.empty())
    fail("--enable-auto-tool-choice needs --tool-call-parser (deepseek_v3), as in vLLM");
  note_vllm_flags(f);
  o.seed = f.seed;
  o.engine.max_model_len = server::parse_human_int(f.max_model_len, "--max-model-len");
  o.engine.device_sampling = f.sampler == "auto";
  o.engine.scheduling_policy =
      f.scheduling_policy == "priority" ? SchedulingPolicy::scheduling_priority : SchedulingPolicy::scheduling_fcfs;
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
  add_noted_flags(cmd, *flags);
  cmd->callback([flags] { run(*flags); });
}

}  // namespace dsi
