#pragma once
// The HTTP API: routes, authentication, and the handlers of every endpoint (OpenAI's
// /v1/completions, /v1/chat/completions, /v1/models; vLLM's /tokenize, /detokenize,
// /health, /version; Prometheus /metrics). Errors become OpenAI-shaped error responses.
#include <memory>

#include "server/api_context.h"
#include "server/http_connection.h"

namespace dsi::server {

// Answers one request on its connection's strand (an HttpServer handler).
void handle_api_request(ApiContext& context, const std::shared_ptr<HttpConnection>& connection, HttpRequest&& request);

}  // namespace dsi::server
