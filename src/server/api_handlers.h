#pragma once
// The endpoint handlers behind api_router (internal to the server module). Each returns what
// the router answers, or throws ApiError / Error, which the router turns into the error
// response. They only read the context: the router runs them on its preprocessing threads,
// off the I/O threads (they parse, render templates and tokenize: the costly part of a request).
#include <memory>
#include <string>
#include <string_view>

#include "server/api_context.h"
#include "server/generation.h"
#include "server/http_connection.h"
#include "server/openai_request.h"  // parse_request_body

namespace dsi::server {

// 404 unless `model` is empty or one of the served names.
void check_model_name(const ApiContext& context, const std::string& model);

// The generation to start (token-id prompts, final max_tokens) of a request body.
GenerationInput prepare_completions(const ApiContext& context, const std::string& body);
GenerationInput prepare_chat_completions(const ApiContext& context, const std::string& body);
// The 200 response body.
Json tokenize_response(const ApiContext& context, const std::string& body);
Json detokenize_response(const ApiContext& context, const std::string& body);

}  // namespace dsi::server
