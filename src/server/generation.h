#pragma once
// One generation request of the API (a completion or a chat completion) in flight: its
// choices as engine requests (n per prompt, seed + i each when a seed is given), their events
// brought from the engine's thread to the connection's strand, and the response, streamed as
// SSE or sent whole at the end. A client that goes away aborts every choice at once.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "server/api_context.h"
#include "server/http_connection.h"
#include "server/openai_request.h"
#include "server/response_json.h"

namespace dsi::server {

struct GenerationInput {
  ApiKind kind = ApiKind::api_completion;
  GenerationOptions options;               // sampling.max_tokens final
  std::vector<std::vector<int32_t>> prompts;  // token ids, validated
  std::vector<std::string> echo_texts;     // completions with echo: each prompt's text
  bool parse_tool_calls = false;           // chat with tools and --tool-call-parser
  std::chrono::steady_clock::time_point arrival = std::chrono::steady_clock::now();
};

// Submits the choices, all together, and answers on `connection` (from its strand). Throws
// ApiError before anything is sent or run if the engine refuses them: 503 when the queue is
// full now or the engine is shutting down, 400 for what it finds invalid and for more choices
// than the queue ever holds (--max-num-seqs + --max-waiting-requests).
void start_generation(ApiContext& context, const std::shared_ptr<HttpConnection>& connection, GenerationInput input);

}  // namespace dsi::server
