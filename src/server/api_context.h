#pragma once
// What every API handler shares: the engine, the tokenizer, the metrics and the serving
// options. Built once by `dsinfer serve`; the engine, metrics and pool are thread-safe, the
// rest is immutable while serving. Whether the server is shutting down is the connection's to
// say (HttpConnection::shutting_down).
#include <atomic>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/group_health.h"
#include "server/openai_request.h"
#include "server/structured_output.h"
#include "server/metrics.h"
#include "server/work_pool.h"
#include "tokenizer/tokenizer.h"

namespace dsi::server {

struct ApiOptions {
  std::vector<std::string> served_model_names;  // the first is reported in responses
  std::string api_key;                          // empty: no authentication
  bool reasoning_parser_r1 = false;             // --reasoning-parser deepseek-r1
  bool tool_parser_v3 = false;                  // --tool-call-parser deepseek-v3
  int64_t created = 0;                          // unix time the server started (/v1/models)
  RequestDefaults defaults;                     // --generation-config, --max-logprobs
  std::optional<uint64_t> default_seed;         // --seed: requests without a seed draw theirs from it
};

struct ApiContext {
  Engine& engine;
  const Tokenizer& tokenizer;
  ServerMetrics& metrics;
  ApiOptions options;
  WorkPool& preprocess;  // parsing, chat templates and tokenization, off the I/O threads
  // --seed: the k-th unseeded request gets a seed derived from (seed, k), so a fresh server
  // answering the same requests in the same order repeats itself, as vLLM's --seed does.
  mutable std::atomic<uint64_t> unseeded_requests{0};
  StructuredOutputs* structured = nullptr;  // compiled structured-output grammars (serve.cpp owns it)
  const GroupHealth* group_health = nullptr;  // a parallel server's ranks (serve.cpp owns it); null: one process
  const std::string& model_name() const { return options.served_model_names.front(); }
};

}  // namespace dsi::server
