#pragma once
// `dsinfer serve`: loads the model and tokenizer, starts the engine on its own thread and the
// HTTP server on Asio, and runs until SIGTERM/SIGINT/SIGUSR1. The first signal drains (no new
// requests; in-flight ones complete), a second or --shutdown-timeout cancels what is still
// running (shutdown.h); either way the exit code is 0 (1 when the engine failed).
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/model_loader.h"
#include "engine/model_runner.h"
#include "server/http_connection.h"

#include "parallel/parallel_context.h"

namespace dsi::server {

struct ServeOptions {
  ModelSource source;               // --model (or the positional MODEL), --load-format, --dummy-weight-seed
  std::string tokenizer_dir;        // empty: the model folder, else the embedded DeepSeek-V3 tokenizer
  std::string chat_template_file;
  std::string host = "127.0.0.1";
  int port = 8000;                  // 0: any free port (logged)
  std::vector<std::string> served_model_names;  // empty: --model as given (the demo: dsinfer-default)
  std::string api_key;
  EngineOptions engine;
  BackendOptions backend;           // --device, --dtype, --kv-cache-dtype
  // "auto": 1 GiB on the CPU; on a GPU what --gpu-memory-utilization leaves after the weights,
  // the workspace and the backend's scratch (model_runner.h).
  std::string kv_cache_memory = "auto";
  double gpu_memory_utilization = 0.9;
  int block_size = 64;
  bool prefix_caching = true;
  int threads = 0;       // CPU threads of the model (0: one per core)
  int http_threads = 1;  // I/O threads of the HTTP server
  HttpLimits limits;
  double shutdown_timeout_s = 30;  // draining longer than this cancels what is left
  int preprocess_threads = 2;      // threads that parse, template and tokenize requests
  std::string reasoning_parser;  // "" or deepseek-r1
  std::string tool_call_parser;  // "" or deepseek-v3
  ParallelOptions parallel;      // under mpirun: rank 0 serves, the others run its steps
  // After a rank of the group failed: seconds rank 0 keeps answering (/health 503 naming the
  // failure, new requests 503) before it exits non-zero.
  double failure_exit_delay_s = 5;
  std::optional<uint64_t> seed;   // --seed: the default sampling seed (vLLM's meaning)
  int max_logprobs = 20;          // --max-logprobs
  std::string generation_config = "auto";  // auto | vllm | DIR (vllm_compat.h)
  std::string quantization;                // "" | fp8 | none, checked against the checkpoint
};

// Runs the server until it is signalled; returns the exit code.
int run_serve(const ServeOptions& options);

}  // namespace dsi::server
